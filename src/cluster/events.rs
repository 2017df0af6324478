//! Kubernetes Events on a workflow: best effort, one try.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::events::{Event, EventType};
use tracing::{debug, warn};

use super::{Cluster, describe};

impl Cluster {
    /// Records a Kubernetes Event on the workflow. Best effort: a failure is logged, never fatal,
    /// since the change itself has already happened; and one try only, as an Event is not worth
    /// delaying the step that did its job.
    pub async fn record_event(
        &self,
        workflow: &ObjectMeta,
        reason: &str,
        action: &str,
        note: &str,
    ) {
        let name = workflow.name.clone().unwrap_or_default();
        let reference = ObjectReference {
            api_version: Some("argoproj.io/v1alpha1".to_string()),
            kind: Some("Workflow".to_string()),
            name: Some(name.clone()),
            namespace: Some(
                workflow
                    .namespace
                    .clone()
                    .unwrap_or_else(|| self.namespace.clone()),
            ),
            uid: workflow.uid.clone(),
            resource_version: workflow.resource_version.clone(),
            ..Default::default()
        };
        let event = Event {
            type_: EventType::Normal,
            reason: reason.to_string(),
            note: Some(note.chars().take(1024).collect()),
            action: action.to_string(),
            secondary: None,
        };
        self.retry.count_request();
        match self.recorder.publish(&event, &reference).await {
            Ok(()) => debug!(workflow = %name, reason, "event recorded"),
            Err(e) => {
                warn!(workflow = %name, error = %describe(&e), "could not record an event; the stage change stands")
            }
        }
    }
}
