//! What the core's unit tests build again and again: a play workflow's metadata, a delivery, a
//! history entry. One builder each, so that a test says only what matters to it.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::delivery::Delivery;
use crate::labels;
use crate::record::{ChangeKind, HistoryEntry};
use crate::stage::Pipeline;

/// A pipeline with gates, for the decisions the shipped play never meets: a CI gate (check
/// suites; a failed one fails the play), a workflow-run gate and a merge gate.
pub(crate) fn gated() -> Pipeline {
    crate::pipeline::parse(
        "apiVersion: stagectl.dev/v1alpha1
kind: Pipeline
metadata: {name: gated}
spec:
  stages:
    - name: pending
    - name: waiting-pr-created
      releasedBy: {event: pull-request-opened}
    - name: waiting-ci
      releasedBy: {event: check-suite-completed, conclusion: success}
      failedBy: {event: check-suite-completed, conclusion: failure}
    - name: waiting-run
      releasedBy: {event: workflow-run-completed, conclusion: success, workflow: CI}
    - name: waiting-ready-for-qa
      releasedBy: {event: label-added, label: ready-for-qa}
    - name: waiting-merge
      releasedBy: {event: pull-request-merged}
    - name: completed
",
        "gated.yaml",
    )
    .unwrap()
}

pub(crate) fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap()
}

/// A delivery of a `pull_request` event by `by`, at a fixed time.
pub(crate) fn delivery(id: &str, by: &str) -> Delivery {
    Delivery {
        delivery_id: Some(id.into()),
        event: Some("pull_request".into()),
        at: at(1_790_000_000),
        by: by.into(),
        verdict: Default::default(),
    }
}

/// A forward change from `from` to `to`, made at `nanos`.
pub(crate) fn entry(nanos: i128, from: &str, to: &str) -> HistoryEntry {
    HistoryEntry {
        at: Timestamp::from_nanosecond(nanos).unwrap(),
        from: from.into(),
        to: to.into(),
        kind: ChangeKind::Set,
        by: "test".into(),
        reason: None,
        wait_satisfied_by: None,
        pass: 1,
    }
}

/// A workflow's metadata, built a field at a time: `Meta::named("play-42").stage("pending")`.
#[derive(Default)]
pub(crate) struct Meta(ObjectMeta);

impl Meta {
    pub(crate) fn named(name: &str) -> Self {
        Self(ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        })
    }

    pub(crate) fn namespace(mut self, namespace: &str) -> Self {
        self.0.namespace = Some(namespace.into());
        self
    }

    pub(crate) fn stage(self, stage: &str) -> Self {
        self.label(labels::CURRENT_STAGE, stage)
    }

    pub(crate) fn label(mut self, key: &str, value: &str) -> Self {
        self.0
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value.into());
        self
    }

    pub(crate) fn labels(self, pairs: &[(&str, &str)]) -> Self {
        pairs.iter().fold(self, |meta, (k, v)| meta.label(k, v))
    }

    /// The annotations map, present even when empty (as after a write that emptied it).
    pub(crate) fn annotations(mut self, pairs: &[(String, String)]) -> Self {
        self.0
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .extend(pairs.iter().cloned());
        self
    }

    /// Each entry as its own history annotation, as stagectl writes them.
    pub(crate) fn history(self, entries: &[HistoryEntry]) -> Self {
        let pairs: Vec<(String, String)> = entries
            .iter()
            .map(|e| (e.annotation_key(), serde_json::to_string(e).unwrap()))
            .collect();
        self.annotations(&pairs)
    }

    pub(crate) fn created(mut self, seconds: i64) -> Self {
        self.0.creation_timestamp = Some(Time(at(seconds)));
        self
    }

    pub(crate) fn build(self) -> ObjectMeta {
        self.0
    }
}
