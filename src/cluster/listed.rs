//! A metadata list of workflows as stagectl reads it: every field of each item's metadata but
//! `managedFields`. stagectl never reads them, and building and dropping their field trees (a
//! JSON tree per writer of each workflow) took a third of the CPU time of a `get` of 1,000 plays.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::core::{ObjectList, PartialObjectMeta};
use serde::Deserialize;

use super::WorkflowMeta;

/// One item; its `apiVersion` and `kind` (always PartialObjectMetadata) are not kept either.
#[derive(Deserialize, Clone)]
pub struct ListedItem {
    #[serde(default)]
    metadata: MetadataWithoutManagedFields,
}

/// ObjectMeta's fields, `managedFields` left out: serde skips it in the text without building it.
#[derive(Deserialize, Clone, Default)]
#[serde(rename_all = "camelCase")]
struct MetadataWithoutManagedFields {
    annotations: Option<BTreeMap<String, String>>,
    creation_timestamp: Option<Time>,
    deletion_grace_period_seconds: Option<i64>,
    deletion_timestamp: Option<Time>,
    finalizers: Option<Vec<String>>,
    generate_name: Option<String>,
    generation: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    name: Option<String>,
    namespace: Option<String>,
    owner_references: Option<Vec<OwnerReference>>,
    resource_version: Option<String>,
    self_link: Option<String>,
    uid: Option<String>,
}

/// The list as kube's `list_metadata` would give it, each item's `managed_fields` None.
pub fn into_partial_list(list: ObjectList<ListedItem>) -> ObjectList<WorkflowMeta> {
    ObjectList {
        types: list.types,
        metadata: list.metadata,
        items: list
            .items
            .into_iter()
            .map(|item| {
                let m = item.metadata;
                PartialObjectMeta {
                    types: None,
                    metadata: ObjectMeta {
                        annotations: m.annotations,
                        creation_timestamp: m.creation_timestamp,
                        deletion_grace_period_seconds: m.deletion_grace_period_seconds,
                        deletion_timestamp: m.deletion_timestamp,
                        finalizers: m.finalizers,
                        generate_name: m.generate_name,
                        generation: m.generation,
                        labels: m.labels,
                        managed_fields: None,
                        name: m.name,
                        namespace: m.namespace,
                        owner_references: m.owner_references,
                        resource_version: m.resource_version,
                        self_link: m.self_link,
                        uid: m.uid,
                    },
                    _phantom: PhantomData,
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An item as the API server sends it in a PartialObjectMetadataList, managedFields and all.
    const LIST: &str = r#"{
      "kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
      "metadata": {"resourceVersion": "812", "continue": "next"},
      "items": [{
        "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
        "metadata": {
          "name": "play-task-42-x7k2p", "generateName": "play-task-42-", "namespace": "argo",
          "uid": "7c1f", "resourceVersion": "811", "generation": 3,
          "creationTimestamp": "2026-11-30T02:00:00Z",
          "labels": {"current-stage": "waiting-pr-created", "task-id": "42"},
          "annotations": {"stagectl.dev/repository": "acme/widgets"},
          "finalizers": ["workflows.argoproj.io/artifact-gc"],
          "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate",
            "name": "play", "uid": "a1"}],
          "managedFields": [{"manager": "workflow-controller", "operation": "Update",
            "apiVersion": "argoproj.io/v1alpha1", "time": "2026-11-30T02:00:01Z",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}}}]
        }
      }]
    }"#;

    #[test]
    fn every_field_but_managed_fields_is_read_as_kube_reads_it() {
        let ours = into_partial_list(serde_json::from_str(LIST).unwrap());
        let kubes: ObjectList<WorkflowMeta> = serde_json::from_str(LIST).unwrap();
        assert_eq!(ours.metadata, kubes.metadata);
        let mut expected = kubes.items[0].metadata.clone();
        assert!(expected.managed_fields.take().is_some());
        assert_eq!(ours.items[0].metadata, expected);
    }
}
