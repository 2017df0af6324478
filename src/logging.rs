use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Environment variable that overrides the verbosity flags with a full tracing filter.
pub const LOG_ENV: &str = "STAGECTL_LOG";

/// Logs go to stderr so that stdout carries only results (tables, JSON, YAML) for pipes and
/// scripts. A terminal gets readable lines; anything else (a pod's log, a CI file) gets JSON.
pub fn init(verbosity: i8) {
    let default_level = match verbosity {
        i8::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env(LOG_ENV)
        .unwrap_or_else(|_| EnvFilter::new(format!("stagectl={default_level},warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if std::io::stderr().is_terminal() {
        builder.with_target(false).try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    };
    // A second init (tests call the library more than once) keeps the first subscriber.
    drop(result);
}
