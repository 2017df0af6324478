use std::io;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

use crate::error::{ExitStatus, Result};

const AFTER_HELP: &str = "\
Exit codes:
  0  success: the requested state holds (applied now, or already true)
  1  unexpected failure (an API error of no other class)
  2  bad input: flags, arguments, environment or configuration; nothing was written

Examples:
  stagectl completions bash > /etc/bash_completion.d/stagectl";

/// Atomic, event-safe stage changes for Argo play workflows.
#[derive(Debug, Parser)]
#[command(name = "stagectl", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// More log output (-v debug, -vv trace); logs go to stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,
    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    quiet: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a shell completion script to stdout.
    Completions {
        /// The shell to complete for.
        shell: Shell,
    },
}

impl Cli {
    fn verbosity(&self) -> i8 {
        self.verbose.min(3) as i8 - self.quiet.min(3) as i8
    }
}

/// Parses the command line, runs the command and turns its outcome into the process exit code;
/// the only place where an exit code is decided.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init(cli.verbosity());
    match run(cli) {
        Ok(()) => ExitStatus::Success.into(),
        Err(err) => {
            eprintln!("error: {err}");
            err.exit_status().into()
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "stagectl", &mut io::stdout());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
