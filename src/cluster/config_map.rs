//! The ConfigMap reconcile keeps GitHub's ETags in: read, and written back under a test of
//! the version read.

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use tracing::debug;

use super::{CallError, Cluster, Deadline, describe};
use crate::core::one_line;
use crate::error::{Error, Result};

impl Cluster {
    /// The text under `key` of ConfigMap `name`, and the resourceVersion it was read at; None
    /// when there is no such ConfigMap yet.
    pub async fn read_config_map(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<Option<(String, String)>> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let budget = self.budget();
        match self
            .retry
            .call("get configmap", budget, || api.get_opt(name))
            .await
        {
            Ok(found) => Ok(found.map(|map| {
                let text = map
                    .data
                    .and_then(|mut data| data.remove(key))
                    .unwrap_or_default();
                (text, map.metadata.resource_version.unwrap_or_default())
            })),
            Err(failure) => Err(self.config_map_error(failure, namespace, name, "get", budget)),
        }
    }

    /// Writes `value` under `key` of ConfigMap `name`: over the one read at `resource_version`,
    /// or as a new one. Another writer since (409) wins: its content is as recent as ours.
    pub async fn write_config_map(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        value: String,
        resource_version: Option<String>,
    ) -> Result<()> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let map = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                resource_version: resource_version.clone(),
                labels: Some(
                    [(
                        "app.kubernetes.io/part-of".to_string(),
                        "stagectl".to_string(),
                    )]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            data: Some([(key.to_string(), value)].into()),
            ..ConfigMap::default()
        };
        let budget = self.budget();
        let params = PostParams::default();
        let written = match resource_version {
            Some(_) => {
                self.retry
                    .call("replace configmap", budget, || {
                        api.replace(name, &params, &map)
                    })
                    .await
            }
            None => {
                self.retry
                    .call("create configmap", budget, || api.create(&params, &map))
                    .await
            }
        };
        match written {
            Ok(_) => Ok(()),
            Err(CallError {
                error: kube::Error::Api(status),
                ..
            }) if status.code == 409 => {
                debug!(
                    name,
                    "another run wrote the ConfigMap first; keeping its content"
                );
                Ok(())
            }
            Err(failure) => Err(self.config_map_error(failure, namespace, name, "write", budget)),
        }
    }

    pub(super) fn config_map_error(
        &self,
        failure: CallError,
        namespace: &str,
        name: &str,
        verb: &str,
        budget: Deadline,
    ) -> Error {
        match &failure.error {
            kube::Error::Api(status) if status.code == 403 => Error::forbidden(format!(
                "{}; grant get, create and update on configmaps (the stagectl-reconcile Role of workflow-templates/rbac.yaml), or pass --cache-configmap ''",
                one_line(&status.message)
            )),
            _ if failure.transient => Error::gave_up(format!(
                "gave up on {verb} configmap {name} in namespace {namespace} after {}s: {}; check that the API server at {} is reachable",
                budget.spent().as_secs(),
                describe(&failure.error),
                self.server
            )),
            other => Error::failed(format!(
                "{verb} configmap {name} in namespace {namespace}: {}",
                describe(other)
            )),
        }
        .with_source(failure.error)
    }
}
