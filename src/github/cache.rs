//! What one run of reconcile learnt of GitHub, kept for the next: ETags and the facts of each
//! page, so that an unchanged page costs a 304 and nothing of the rate limit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What the last run learnt, kept between runs: per URL, GitHub's ETag and what its answer
/// said. An answer unchanged since is a 304, which GitHub does not count against the limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cache {
    pub pages: BTreeMap<String, CachedPage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedPage {
    pub etag: String,
    /// The next page's URL, as the Link header gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    pub items: serde_json::Value,
}
