//! GitHub's ETags between runs, in a ConfigMap: read at the start, written back when the run
//! learnt something, under a test of the version it read.

use tracing::warn;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::github::Cache;

/// The ConfigMap key of the cache.
const CACHE_KEY: &str = "github-etags.json";

/// GitHub's ETags as the ConfigMap keeps them between runs (none when its name is "").
pub(super) struct StoredCache {
    configmap: String,
    pub(super) cache: Cache,
    /// The ConfigMap's resourceVersion as read, to write it back under a test of it.
    version: Option<String>,
}

impl StoredCache {
    pub(super) async fn read(cluster: &Cluster, configmap: &str) -> Result<Self> {
        let stored = match configmap {
            "" => None,
            name => {
                cluster
                    .read_config_map(&cluster.namespace, name, CACHE_KEY)
                    .await?
            }
        };
        let (cache, version) = match stored {
            Some((text, version)) => (
                serde_json::from_str(&text).unwrap_or_else(|err| {
                    // Only ETags are lost: this run asks GitHub for everything, and the
                    // next finds the cache it writes.
                    warn!(configmap, error = %err, "GitHub's cache is unreadable; starting without it");
                    Cache::default()
                }),
                Some(version),
            ),
            None => (Cache::default(), None),
        };
        Ok(StoredCache {
            configmap: configmap.to_string(),
            cache,
            version,
        })
    }

    /// Writes what the run learnt, when there is something new to keep.
    pub(super) async fn keep(self, cluster: &Cluster, kept: Cache) -> Result<()> {
        if self.configmap.is_empty() || kept == self.cache {
            return Ok(());
        }
        let text = serde_json::to_string(&kept)
            .map_err(|e| Error::failed(format!("cannot write GitHub's cache: {e}")))?;
        cluster
            .write_config_map(
                &cluster.namespace,
                &self.configmap,
                CACHE_KEY,
                text,
                self.version,
            )
            .await
    }
}
