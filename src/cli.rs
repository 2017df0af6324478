use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

use crate::commands;
use crate::error::{Error, Kind, Result};
use crate::settings::{GlobalArgs, Settings};

const EXAMPLES: &str = "\
Examples:
  stagectl set waiting-pr-created --workflow play-task-42-x7k2p -n argo
  stagectl verify waiting-pr-created --workflow play-task-42-x7k2p --wait=2m
  stagectl get --task-id 42 -A
  stagectl rollback --workflow play-task-42-x7k2p --reason 'retry QA'
  stagectl completions bash > /etc/bash_completion.d/stagectl";

/// Atomic, event-safe stage changes for Argo play workflows.
///
/// Every change is one compare-and-swap on the API server: a JSON Patch that tests the current
/// stage and writes the new one in the same request. Repeating a change that already happened
/// succeeds without writing.
#[derive(Debug, Parser)]
#[command(name = "stagectl", version, about, long_about, after_help = after_help())]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

fn after_help() -> String {
    format!("{}\n\n{EXAMPLES}", Kind::help())
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Move a workflow to a stage: one step forward, or to failed.
    #[command(after_help = commands::set::AFTER_HELP)]
    Set(commands::set::SetArgs),
    /// Check that a workflow is at a stage (exit 0) or not (exit 7); optionally wait for it.
    #[command(after_help = commands::verify::AFTER_HELP)]
    Verify(commands::verify::VerifyArgs),
    /// List play workflows with their stages, or show one workflow's stage record.
    #[command(after_help = commands::get::AFTER_HELP)]
    Get(commands::get::GetArgs),
    /// Deliver an event to the play of a task: resume its wait, or latch the event until it waits.
    #[command(after_help = commands::resume::AFTER_HELP)]
    Resume(commands::resume::ResumeArgs),
    /// Bring the plays that wait level with GitHub: deliver each awaited event that has happened.
    #[command(after_help = commands::reconcile::AFTER_HELP)]
    Reconcile(commands::reconcile::ReconcileArgs),
    /// Return a workflow to its previous stage, or to a named earlier one.
    #[command(after_help = commands::rollback::AFTER_HELP)]
    Rollback(commands::rollback::RollbackArgs),
    /// The manifests a pipeline definition implies: render its Sensors, check a directory.
    #[command(after_help = commands::pipeline::AFTER_HELP)]
    Pipeline(commands::pipeline::PipelineArgs),
    /// Print a shell completion script to stdout.
    Completions {
        /// The shell to complete for.
        shell: Shell,
    },
}

/// Parses the command line, runs the command and turns its outcome into the process exit code;
/// the only place where an exit code is decided.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version are successes; every other parse failure is bad input,
            // reported as one line like every other error.
            if !err.use_stderr() {
                let _ = err.print();
                return ExitCode::SUCCESS;
            }
            let text = err.render().to_string();
            let message: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            crate::output::note(&format!("{}; see --help", message.join(" ")));
            return ExitCode::from(Kind::Usage.code());
        }
    };
    crate::logging::init(cli.global.verbosity());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(err) => Err(Error::failed(format!("cannot start the runtime: {err}")).with_source(err)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            crate::output::note(&format!("error: {err}"));
            ExitCode::from(err.kind.code())
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    if let Command::Completions { shell } = cli.command {
        // Into memory first: clap_complete panics on a failed write, and a closed stdout is
        // no failure of ours.
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "stagectl", &mut script);
        crate::output::emit(&String::from_utf8_lossy(&script));
        return Ok(());
    }
    let settings = Settings::from_args(&cli.global)?;
    match &cli.command {
        Command::Set(args) => commands::set::run(&settings, args).await,
        Command::Verify(args) => commands::verify::run(&settings, args).await,
        Command::Get(args) => commands::get::run(&settings, args).await,
        Command::Rollback(args) => commands::rollback::run(&settings, args).await,
        Command::Resume(args) => commands::resume::run(&settings, args).await,
        Command::Reconcile(args) => commands::reconcile::run(&settings, args).await,
        Command::Pipeline(args) => commands::pipeline::run(&settings, args),
        // Printed above, with no settings and no connection: nothing left to do.
        Command::Completions { .. } => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// `--wait` alone waits as long as --timeout, `--wait=2m` as long as it says.
    #[test]
    fn verify_wait_takes_an_optional_duration() {
        let wait = |extra: &[&str]| {
            let args = ["stagectl", "verify", "completed", "--workflow", "w"];
            let cli = Cli::try_parse_from(args.iter().chain(extra)).unwrap();
            match cli.command {
                Command::Verify(verify) => verify.wait,
                _ => unreachable!(),
            }
        };
        assert_eq!(wait(&[]), None);
        assert_eq!(wait(&["--wait"]), Some(None));
        assert_eq!(
            wait(&["--wait=2m"]),
            Some(Some(std::time::Duration::from_secs(120)))
        );
    }
}
