//! The labels and annotations stagectl keeps on a Workflow, and the encoding of values into them.

use crate::error::{Error, Result};

pub const WORKFLOW_TYPE: &str = "workflow-type";
pub const CURRENT_STAGE: &str = "current-stage";
pub const TASK_ID: &str = "task-id";
pub const REPOSITORY: &str = "repository";
pub(crate) const UPDATED_AT: &str = "updated-at";

/// The value of `workflow-type` that marks a play.
pub const PLAY: &str = "play-orchestration";

/// The repository as given (`owner/repo`); the label holds only its encoding.
pub(crate) const REPOSITORY_ANNOTATION: &str = "stagectl.dev/repository";

/// The Argo controller's labels: stagectl reads these and never writes any of them.
pub const ARGO_PHASE: &str = "workflows.argoproj.io/phase";
pub(crate) const ARGO_COMPLETED: &str = "workflows.argoproj.io/completed";

const LABEL_VALUE_MAX: usize = 63;

/// Whether `value` is a valid Kubernetes label value: at most 63 characters of `[A-Za-z0-9._-]`,
/// starting and ending with an alphanumeric (or empty).
pub(crate) fn is_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    if bytes.len() > LABEL_VALUE_MAX {
        return false;
    }
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return true;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A task id, checked before it goes anywhere near a label selector or a patch: a label value,
/// non-empty, so `5,current-stage=x` or `5 in (6)` can never widen a selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskId(String);

impl TaskId {
    pub fn parse(task_id: &str) -> Result<Self> {
        if !task_id.is_empty() && is_label_value(task_id) {
            Ok(Self(task_id.to_string()))
        } else {
            Err(Error::usage(format!(
                "invalid task id {:?}: use 1-63 characters of letters, digits, '-', '_' or '.', \
                 starting and ending with a letter or digit",
                shorten(task_id)
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Delivery ids and event names go into annotations and messages: letters, digits, `-`, `_`, `.`.
pub fn validate_token<'a>(what: &str, value: &'a str) -> Result<&'a str> {
    if !value.is_empty() && is_label_value(value) {
        Ok(value)
    } else {
        Err(Error::usage(format!(
            "invalid {what} {:?}: use 1-63 letters, digits, '-', '_' or '.', as GitHub sends it",
            shorten(value)
        )))
    }
}

/// A Workflow name as the API server accepts it (a DNS subdomain), checked before any request
/// so that a path or a selector can never ride in on it. Read as the `str` it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowName(String);

impl WorkflowName {
    pub fn parse(name: &str) -> Result<Self> {
        validate_dns_name(name, 253, true)
            .map(|name| Self(name.to_string()))
            .map_err(|()| {
                Error::usage(format!(
                    "invalid workflow name {:?}: use lowercase letters, digits, '-' and '.' (as `kubectl get workflows` shows it)",
                    shorten(name)
                ))
            })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for WorkflowName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for WorkflowName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A namespace name (a DNS label).
pub fn validate_namespace(name: &str) -> Result<&str> {
    validate_dns_name(name, 63, false).map_err(|()| {
        Error::usage(format!(
            "invalid namespace {:?}: use lowercase letters, digits and '-', at most 63",
            shorten(name)
        ))
    })
}

fn validate_dns_name(name: &str, max: usize, dots: bool) -> std::result::Result<&str, ()> {
    let ok = (1..=max).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || (dots && b == b'.')
        })
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok { Ok(name) } else { Err(()) }
}

/// A GitHub repository `owner/repo`, validated and encoded for the `repository` label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    full_name: String,
}

impl Repository {
    /// Accepts what GitHub accepts: an owner of letters, digits and single hyphens (at most 39),
    /// a repository name of letters, digits, '.', '-' and '_' (at most 100, not `.` or `..`).
    pub fn parse(full_name: &str) -> Result<Self> {
        let invalid = |why: &str| {
            Error::usage(format!(
                "invalid repository {:?}: {why}; use OWNER/REPO as GitHub names it, e.g. acme/widgets",
                shorten(full_name)
            ))
        };
        let (owner, name) = full_name.split_once('/').ok_or_else(|| invalid("no '/'"))?;
        let owner_ok = (1..=39).contains(&owner.len())
            && owner
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !owner.starts_with('-')
            && !owner.ends_with('-')
            && !owner.contains("--");
        if !owner_ok {
            return Err(invalid(
                "the owner is not a GitHub user or organisation name",
            ));
        }
        let name_ok = (1..=100).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
            && name != "."
            && name != "..";
        if !name_ok {
            return Err(invalid(
                "the repository name is not a GitHub repository name",
            ));
        }
        Ok(Self {
            full_name: full_name.to_string(),
        })
    }

    pub fn full_name(&self) -> &str {
        &self.full_name
    }

    /// The `repository` label value. GitHub names are case-insensitive, so the label is
    /// lowercase and an event spelled `Acme/Widgets` finds the play of `acme/widgets`.
    /// `owner.repo` when that is a valid label value (the owner has no '.', so it decodes back);
    /// otherwise a readable prefix and a hash of the whole name with no '.' at all, so it is never
    /// mistaken for the plain form, and decodes only through the `stagectl.dev/repository`
    /// annotation kept beside it.
    pub fn label_value(&self) -> String {
        let plain = self.full_name.to_ascii_lowercase().replacen('/', ".", 1);
        if is_label_value(&plain) {
            return plain;
        }
        let hash = sha256_hex(plain.as_bytes());
        let prefix: String = plain
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(LABEL_VALUE_MAX - 11)
            .collect();
        let prefix = prefix.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
        format!("{prefix}-{}", &hash[..10])
    }

    /// The lowercase `owner/repo` a plain label value stands for; `None` for the hashed form.
    pub(crate) fn decode_label(value: &str) -> Option<String> {
        let (owner, name) = value.split_once('.')?;
        let candidate = Repository::parse(&format!("{owner}/{name}")).ok()?;
        (candidate.label_value() == value).then_some(candidate.full_name)
    }
}

/// Only the beginning of a long hostile value goes into an error message.
pub fn shorten(value: &str) -> String {
    const MAX: usize = 80;
    if value.chars().count() <= MAX {
        value.to_string()
    } else {
        format!("{}…", value.chars().take(MAX).collect::<String>())
    }
}

fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_follow_kubernetes_rules() {
        for ok in ["", "a", "42", "task-42", "a.b_c-d", &"x".repeat(63)] {
            assert!(is_label_value(ok), "{ok:?} should be valid");
        }
        for bad in [
            "-a",
            "a-",
            ".a",
            "a b",
            "a,b",
            "a=b",
            "ä",
            &"x".repeat(64),
            "a/b",
        ] {
            assert!(!is_label_value(bad), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn task_ids_that_could_widen_a_selector_are_refused() {
        assert_eq!(TaskId::parse("42").unwrap().as_str(), "42");
        for hostile in [
            "",
            "5,current-stage=x",
            "5 in (6)",
            "!5",
            "5\n",
            "$(rm -rf /)",
            "ünï",
        ] {
            let err = TaskId::parse(hostile).unwrap_err();
            assert_eq!(err.kind, crate::error::Kind::Usage, "{hostile:?}");
        }
    }

    #[test]
    fn names_that_could_carry_paths_or_selectors_are_refused() {
        assert!(WorkflowName::parse("play-task-42-x7k2p").is_ok());
        assert!(validate_namespace("argo").is_ok());
        for bad in [
            "",
            "Play",
            "a/b",
            "../x",
            "a b",
            "a,b",
            "-a",
            "a-",
            &"a".repeat(254),
        ] {
            assert!(WorkflowName::parse(bad).is_err(), "{bad:?}");
        }
        for bad in ["", "a.b", "A", "a/b", &"a".repeat(64)] {
            assert!(validate_namespace(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn repository_encoding_is_reversible_when_plain() {
        let repo = Repository::parse("Acme/Widgets.rs").unwrap();
        assert_eq!(repo.label_value(), "acme.widgets.rs");
        assert_eq!(
            Repository::decode_label("acme.widgets.rs").as_deref(),
            Some("acme/widgets.rs")
        );
        assert_eq!(repo.full_name(), "Acme/Widgets.rs");
    }

    #[test]
    fn long_or_awkward_repository_names_get_a_valid_bounded_label() {
        let long = format!("acme/{}", "w".repeat(90));
        for name in [
            long.as_str(),
            "acme/.github",
            "acme/trailing-",
            "acme/under_",
        ] {
            let value = Repository::parse(name).unwrap().label_value();
            assert!(is_label_value(&value), "{name} -> {value}");
            assert!(value.len() <= 63);
        }
        let a = Repository::parse(&format!("acme/{}a", "w".repeat(90)))
            .unwrap()
            .label_value();
        let b = Repository::parse(&format!("acme/{}b", "w".repeat(90)))
            .unwrap()
            .label_value();
        assert_ne!(a, b, "names sharing a long prefix stay apart");
        assert_eq!(Repository::decode_label(&a), None);
    }

    /// The play template computes the same label with an Argo expression; tests/argo checks it
    /// against the same vectors.
    #[test]
    fn repository_labels_match_the_shared_vectors() {
        let vectors: serde_json::Value = serde_json::from_str(include_str!(
            "../../../tests/vectors/repository-labels.json"
        ))
        .unwrap();
        for vector in vectors["vectors"].as_array().unwrap() {
            let name = vector["repository"].as_str().unwrap();
            let label = Repository::parse(name).unwrap().label_value();
            assert_eq!(label, vector["label"].as_str().unwrap(), "{name}");
        }
    }

    #[test]
    fn malformed_repositories_are_refused() {
        for bad in [
            "", "acme", "/widgets", "acme/", "acme/..", "-acme/w", "ac--me/w", "acme/w/x",
            "acme/w x", "acme/ü",
        ] {
            assert!(Repository::parse(bad).is_err(), "{bad:?}");
        }
    }
}
