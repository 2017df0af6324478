//! One way to follow workflows, for `get --watch` and `verify --wait`: a list, then every
//! change, metadata only; and one rule for its failures.

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};

use super::{Cluster, Deadline, Target, WorkflowMeta};
use crate::error::{Error, Result};

/// Which workflows to follow: those of a namespace (or all), with these labels, or the one
/// of this name.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    pub namespace: Option<&'a str>,
    pub labels: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// What the watch saw.
#[derive(Debug)]
pub enum Change {
    /// A list begins: the first, or again after a long disconnection. Until `Listed`, what
    /// follows is the whole set.
    Relist,
    /// One workflow of the list.
    Item(ObjectMeta),
    /// The list is complete.
    Listed,
    Applied(ObjectMeta),
    Deleted(ObjectMeta),
}

pub struct Watch {
    events: BoxStream<'static, std::result::Result<watcher::Event<WorkflowMeta>, watcher::Error>>,
    listed: bool,
    budget: Deadline,
    target: Target,
}

impl Cluster {
    pub fn watch(&self, scope: Scope<'_>) -> Watch {
        let mut config = watcher::Config::default();
        if let Some(labels) = scope.labels {
            config = config.labels(labels);
        }
        if let Some(name) = scope.name {
            config = config.fields(&format!("metadata.name={name}"));
        }
        let api = match scope.namespace {
            Some(namespace) => self.workflow_metas(namespace),
            None => kube::Api::all_with(self.client.clone(), &super::workflow_resource()),
        };
        Watch {
            events: watcher::watcher(api, config).default_backoff().boxed(),
            listed: false,
            budget: self.budget(),
            target: Target {
                namespace: scope.namespace.map(str::to_string),
                name: scope.name.map(str::to_string),
            },
        }
    }
}

impl Watch {
    /// The next change; None if the watch ended. Until the first list is complete, a lasting
    /// failure (no access, no Argo CRDs) is the answer, with the exit code of the same failure
    /// of a read, and a transient one (a server starting, overloaded) is tried again within
    /// --timeout. After it, a watch that broke is resumed, as kubectl's is.
    pub async fn next(&mut self, cluster: &Cluster) -> Option<Result<Change>> {
        loop {
            let event = match self.events.next().await? {
                Ok(event) => event,
                Err(err) if !self.listed => {
                    let (watcher::Error::InitialListFailed(err)
                    | watcher::Error::WatchStartFailed(err)
                    | watcher::Error::WatchFailed(err)) = err
                    else {
                        return Some(Err(Error::failed(format!("cannot watch workflows: {err}"))));
                    };
                    if cluster.may_retry_watch(&err, self.budget) {
                        tracing::debug!(error = %err, "watch not started yet; trying again");
                        continue;
                    }
                    return Some(Err(cluster.watch_error(err, &self.target, self.budget)));
                }
                Err(err) => {
                    tracing::warn!(error = %err, "watch interrupted; resuming");
                    continue;
                }
            };
            return Some(Ok(match event {
                watcher::Event::Init => Change::Relist,
                watcher::Event::InitApply(meta) => Change::Item(meta.metadata),
                watcher::Event::InitDone => {
                    self.listed = true;
                    Change::Listed
                }
                watcher::Event::Apply(meta) => Change::Applied(meta.metadata),
                watcher::Event::Delete(meta) => Change::Deleted(meta.metadata),
            }));
        }
    }
}
