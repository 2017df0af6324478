use std::io::IsTerminal;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// Environment variable that overrides the verbosity flags: `target=level` directives, comma
/// separated, a bare level for every other target.
pub const LOG_ENV: &str = "STAGECTL_LOG";

/// Logs go to stderr so that stdout carries only results (tables, JSON, YAML) for pipes and
/// scripts. A terminal gets readable lines; anything else (a pod's log, a CI file) gets JSON.
pub fn init(verbosity: i8) {
    let default_level = match verbosity {
        i8::MIN..=-2 => tracing::Level::ERROR,
        -1 => tracing::Level::WARN,
        0 => tracing::Level::INFO,
        1 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    // Targets (`stagectl=debug,kube=info,warn`) rather than EnvFilter: its span and field
    // filters bring a regex engine into the binary for a debugging knob.
    let filter = std::env::var(LOG_ENV)
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| {
            Targets::new()
                .with_target("stagectl", default_level)
                .with_default(tracing::Level::WARN)
        });
    let logs = tracing_subscriber::registry().with(filter);
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let result = if std::io::stderr().is_terminal() {
        logs.with(lines.with_target(false)).try_init()
    } else {
        logs.with(lines.json().flatten_event(true).with_current_span(false))
            .try_init()
    };
    // A second init (tests call the library more than once) keeps the first subscriber.
    drop(result);
}
