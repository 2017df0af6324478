/// The class of a failure. Each has its exit code, which is part of the interface (workflow
/// templates' `retryStrategy` expressions, sensors and CI scripts branch on it, so a value never
/// changes meaning), and its name in logs and metrics: both in [`Kind::TABLE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Failed,
    Usage,
    Refused,
    NotFound,
    Forbidden,
    GaveUp,
    Mismatch,
}

/// One row of the table: the kind, its exit code, its name, and what it means (`--help`,
/// README.md).
struct Row {
    kind: Kind,
    code: u8,
    name: &'static str,
    meaning: &'static str,
}

impl Kind {
    const TABLE: [Row; 7] = [
        Row {
            kind: Kind::Failed,
            code: 1,
            name: "failed",
            meaning: "unexpected failure (an API error of no other class)",
        },
        Row {
            kind: Kind::Usage,
            code: 2,
            name: "usage",
            meaning: "bad input (flags, arguments, environment, kubeconfig); nothing was written",
        },
        Row {
            kind: Kind::Refused,
            code: 3,
            name: "refused",
            meaning: "refused: the workflow's state does not allow it (wrong stage, other task), or the API\n     server's stage-machine policy refused the write; nothing was written",
        },
        Row {
            kind: Kind::NotFound,
            code: 4,
            name: "not-found",
            meaning: "not found: the workflow, its namespace, or the Argo Workflow CRD",
        },
        Row {
            kind: Kind::Forbidden,
            code: 5,
            name: "forbidden",
            meaning: "forbidden: RBAC does not allow it, or the credentials are not accepted",
        },
        Row {
            kind: Kind::GaveUp,
            code: 6,
            name: "gave-up",
            meaning: "gave up: the API server was unreachable or kept failing until --timeout, or a wait ran out;\n     for reconcile, GitHub was unreachable or its rate limit used up (nothing written)",
        },
        Row {
            kind: Kind::Mismatch,
            code: 7,
            name: "mismatch",
            meaning: "mismatch: the workflow is not at the stage asked for (verify), or manifests disagree\n     with the pipeline definition (pipeline check)",
        },
    ];

    /// The table is in the order of the enum, which the compiler checks below: the index is
    /// in range and the row is this kind's.
    fn row(self) -> &'static Row {
        &Self::TABLE[self as usize]
    }

    /// The process's exit code.
    pub fn code(self) -> u8 {
        self.row().code
    }

    /// A stable name for logs and metrics.
    pub fn name(self) -> &'static str {
        self.row().name
    }

    /// The exit codes, as `--help` prints them and README.md keeps them.
    pub fn help() -> String {
        let mut text = String::from(
            "Exit codes:\n  0  success: the requested state holds (applied now, or already true)\n",
        );
        let mut rows: Vec<&Row> = Self::TABLE.iter().collect();
        rows.sort_by_key(|row| row.code);
        for row in rows {
            text.push_str(&format!("  {}  {}\n", row.code, row.meaning));
        }
        text.pop();
        text
    }
}

const _: () = {
    let mut index = 0;
    while index < Kind::TABLE.len() {
        assert!(
            Kind::TABLE[index].kind as usize == index,
            "Kind::TABLE is in the enum's order"
        );
        index += 1;
    }
};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure stagectl reports: its class, one line that says what was wrong and what to do
/// about it, and the error underneath (an API error, an I/O error) for logs and `{:#}`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: Kind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }

    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(Kind::Refused, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(Kind::Forbidden, message)
    }

    pub fn gave_up(message: impl Into<String>) -> Self {
        Self::new(Kind::GaveUp, message)
    }

    pub fn mismatch(message: impl Into<String>) -> Self {
        Self::new(Kind::Mismatch, message)
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(Kind::Failed, message)
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// A stable name for logs and metrics.
    pub fn outcome(&self) -> &'static str {
        self.kind.name()
    }
}

impl From<anyhow::Error> for Error {
    fn from(err: anyhow::Error) -> Self {
        Self::failed(crate::one_line(&format!("{err:#}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_code_of_its_own() {
        let mut codes: Vec<u8> = Kind::TABLE.iter().map(|row| row.code).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), Kind::TABLE.len(), "one code a kind");
    }
}
