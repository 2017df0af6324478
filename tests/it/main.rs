//! Integration tests: one binary, run against the real control plane of tests/controlplane.
//! `make test` starts it and runs them; plain `cargo test` lists them as ignored.

mod harness;

mod controlplane;
mod hostile_inputs;
mod stage_changes;
