//! Flows that several commands share, each once: the commands parse and report, these do.

/// An event delivered to its play: latched, resumed, or a no-op.
pub(crate) mod deliver;
