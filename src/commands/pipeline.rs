//! `stagectl pipeline`: the manifests a pipeline definition implies, written or checked. The
//! definition is the global `--pipeline FILE` (else the built-in play).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::core::agreement::{self, ManifestFile};
use crate::core::pipeline;
use crate::core::render;
use crate::error::{Error, Result};
use crate::output;
use crate::settings::Settings;

pub const AFTER_HELP: &str = "\
Examples:
  # The play's manifests, as workflow-templates/ holds them:
  stagectl pipeline render -d workflow-templates
  # A pipeline of your own: its directory, then your play template in it, checked, installed:
  stagectl --pipeline my-pipeline.yaml pipeline render -d my-manifests/
  stagectl --pipeline my-pipeline.yaml pipeline check my-manifests/ && kubectl apply -k my-manifests/
  # A pipeline of your own, applied straight away:
  stagectl --pipeline my-pipeline.yaml pipeline render | kubectl apply -n argo -f -
  # Does the directory agree with the definition (template waits, Sensors)? Exit 7 if not.
  stagectl --pipeline my-pipeline.yaml pipeline check my-manifests/";

#[derive(Debug, Args)]
pub struct PipelineArgs {
    #[command(subcommand)]
    command: PipelineCommand,
}

#[derive(Debug, Subcommand)]
enum PipelineCommand {
    /// Write the pipeline's manifests: into DIR everything `kubectl apply -k DIR` installs but
    /// the play's template (the stage-machine policy, the EventSource, a Sensor per wait and
    /// per failedBy, the accounts, stage-resume and reconcile, the kustomization), or the
    /// objects among them to stdout as one YAML stream.
    Render {
        /// The directory to write them into (created if missing); its
        /// play-workflow-template.yaml is yours, and left alone.
        #[arg(long, short = 'd', value_name = "DIR")]
        output_dir: Option<PathBuf>,
    },
    /// Print the definition as the one line of JSON a play carries, and a play template of a
    /// pipeline of your own passes to its stage step (`--pipeline='…'`).
    Definition,
    /// Check a directory of manifests against the definition: the play's template waits
    /// exactly once at each waiting stage, sets only its stages and gives its first step this
    /// definition, and every other file is exactly what `render` writes. Exit 7 when anything
    /// disagrees, with one line for each.
    Check {
        /// The directory of manifests (as `kubectl apply -k` takes it).
        dir: PathBuf,
    },
}

/// Largest manifest file read: manifests are pages of YAML.
const FILE_MAX: u64 = 1024 * 1024;

pub fn run(settings: &Settings, args: &PipelineArgs) -> Result<()> {
    let pipeline = &settings.pipeline;
    match &args.command {
        PipelineCommand::Render { output_dir: None } => {
            // The objects only, for `kubectl apply -f -`: kustomize's files are no objects.
            let stream: Vec<String> = render::manifests(pipeline)
                .into_iter()
                .filter(|m| !render::KUSTOMIZE_FILES.contains(&m.file.as_str()))
                .map(|m| m.text)
                .collect();
            output::emit(&stream.join("---\n"));
            Ok(())
        }
        PipelineCommand::Render {
            output_dir: Some(dir),
        } => {
            std::fs::create_dir_all(dir).map_err(|err| unwritable(dir, &err.to_string()))?;
            let mut written = String::new();
            for manifest in render::manifests(pipeline) {
                let path = dir.join(&manifest.file);
                std::fs::write(&path, &manifest.text)
                    .map_err(|err| unwritable(&path, &err.to_string()))?;
                written.push_str(&format!("{} written\n", path.display()));
            }
            output::emit(&written);
            Ok(())
        }
        PipelineCommand::Definition => {
            let json = pipeline::to_json(pipeline).ok_or_else(|| {
                Error::usage(
                    "a bare stage order (--stages) is no definition: it names no events; \
                     give one with --pipeline FILE",
                )
            })?;
            output::emit(&(json + "\n"));
            Ok(())
        }
        PipelineCommand::Check { dir } => {
            let files = read_dir(dir)?;
            let problems = agreement::check(pipeline, &files);
            if problems.is_empty() {
                output::emit(&format!(
                    "{} agrees with pipeline {} ({pipeline})\n",
                    dir.display(),
                    pipeline.name()
                ));
                return Ok(());
            }
            output::emit(&(problems.join("\n") + "\n"));
            Err(Error::mismatch(format!(
                "{} disagrees with pipeline {} in {} (listed above); \
                 `stagectl pipeline render -d DIR` writes the Sensors, the template is yours to edit",
                dir.display(),
                pipeline.name(),
                match problems.len() {
                    1 => "1 place".to_string(),
                    n => format!("{n} places"),
                }
            )))
        }
    }
}

fn unwritable(path: &Path, why: &str) -> Error {
    Error::usage(format!(
        "cannot write {}: {why}; give a directory you can write to",
        path.display()
    ))
}

/// The YAML files of a directory, each with its documents, in name order.
fn read_dir(dir: &Path) -> Result<Vec<ManifestFile>> {
    let unreadable = |path: &Path, why: String| {
        Error::usage(format!(
            "cannot read {}: {why}; give the directory of a pipeline's manifests",
            path.display()
        ))
    };
    let entries = std::fs::read_dir(dir).map_err(|err| unreadable(dir, err.to_string()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.is_file()
                && path
                    .extension()
                    .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let mut text = String::new();
            std::fs::File::open(&path)
                .and_then(|file| file.take(FILE_MAX + 1).read_to_string(&mut text))
                .map_err(|err| unreadable(&path, err.to_string()))?;
            if text.len() as u64 > FILE_MAX {
                return Err(unreadable(&path, format!("larger than {FILE_MAX} bytes")));
            }
            let documents =
                documents(&text).map_err(|err| unreadable(&path, format!("not YAML: {err}")))?;
            Ok(ManifestFile {
                file: path
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                text,
                documents,
            })
        })
        .collect()
}

fn documents(text: &str) -> std::result::Result<Vec<serde_json::Value>, serde_yaml::Error> {
    use serde::Deserialize as _;
    serde_yaml::Deserializer::from_str(text)
        .map(serde_json::Value::deserialize)
        .filter(|doc| !matches!(doc, Ok(serde_json::Value::Null)))
        .collect()
}
