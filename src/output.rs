//! What goes to stdout: kubectl-style tables, JSON, YAML or names. Pure rendering.

use jiff::Timestamp;
use serde::Serialize;

use crate::core::record::StageRecord;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Columns for people.
    #[default]
    Table,
    /// More columns.
    Wide,
    Json,
    Yaml,
    /// `workflow.argoproj.io/NAME`, one per line, for scripts.
    Name,
}

/// Whether stdout still has a reader after a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Printed {
    Yes,
    /// The reader went away (`stagectl get | head`): the rest of the output is not wanted.
    ReaderGone,
}

/// Writes a result to stdout. A reader that went away is not an error, and it ends nothing but
/// the printing: a command writes its files before it prints, and its exit code is the
/// outcome's, whoever reads the output.
pub fn emit(text: &str) -> Printed {
    write_to(&mut std::io::stdout().lock(), text)
}

/// Writes one line to stderr, for people (kubectl's "No resources found."), and the error line.
/// A stderr nobody reads is no reason to fail, or to panic as `eprintln!` does.
pub fn note(line: &str) {
    let _ = write_to(&mut std::io::stderr().lock(), &format!("{line}\n"));
}

fn write_to(out: &mut impl std::io::Write, text: &str) -> Printed {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Printed::Yes,
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Printed::ReaderGone,
        Err(err) => {
            tracing::warn!(error = %err, "cannot write the result to stdout");
            Printed::Yes
        }
    }
}

// Unreachable, both: serde fails only on a map whose keys are not strings or on a Serialize
// impl that fails, and what stagectl prints is its own derived types, JSON values and maps
// keyed by strings.
pub fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("output serializes") + "\n"
}

pub fn to_yaml<T: Serialize>(value: &T) -> String {
    serde_yaml::to_string(value).expect("output serializes")
}

pub fn resource_name(name: &str) -> String {
    format!("workflow.argoproj.io/{name}")
}

/// How `get` shows plays: in which format, whether rows name their namespace (a list across
/// namespaces), and the time their ages are counted to.
#[derive(Debug, Clone, Copy)]
pub struct RecordView {
    pub format: Format,
    pub namespace_column: bool,
    pub now: Timestamp,
}

#[derive(Serialize)]
struct RecordList<'a> {
    items: &'a [StageRecord],
}

impl RecordView {
    /// One named workflow: in JSON or YAML, the record itself rather than a list of one.
    pub fn one(&self, record: &StageRecord) -> String {
        match self.format {
            Format::Json | Format::Yaml => render(record, self.format),
            _ => self.list(std::slice::from_ref(record)),
        }
    }

    /// A list: documents with `items`, names, or a table.
    pub fn list(&self, records: &[StageRecord]) -> String {
        match self.format {
            Format::Json | Format::Yaml => render(&RecordList { items: records }, self.format),
            Format::Name => names(records),
            Format::Table | Format::Wide => columns(self.table_rows(records)),
        }
    }

    pub fn is_table(&self) -> bool {
        matches!(self.format, Format::Table | Format::Wide)
    }

    /// The table's header, then a row per record.
    pub fn table_rows(&self, records: &[StageRecord]) -> Vec<Vec<String>> {
        let (wide, now) = (self.format == Format::Wide, self.now);
        let mut header = vec![
            "NAME",
            "TASK",
            "REPOSITORY",
            "STAGE",
            "PASS",
            "UPDATED",
            "PHASE",
        ];
        if self.namespace_column {
            header.insert(0, "NAMESPACE");
        }
        if wide {
            header.extend(["AGE", "CHANGES", "LAST-CHANGE-BY", "LAST-REASON"]);
        }
        let dash = || "<none>".to_string();
        let rows = records.iter().map(|r| {
            let mut row = vec![
                r.name.clone(),
                r.task_id.clone().unwrap_or_else(dash),
                r.repository.clone().unwrap_or_else(dash),
                r.stage.as_ref().map_or_else(dash, ToString::to_string),
                // The pass it is in, of those its pipeline allows: 2/3 is a play sent back once.
                format!("{}/{}", r.pass, r.pipeline.passes()),
                r.updated_at.map(|t| age(t, now)).unwrap_or_else(dash),
                r.phase.clone().unwrap_or_else(dash),
            ];
            if self.namespace_column {
                row.insert(0, r.namespace.clone());
            }
            if wide {
                let last = r.history.last();
                row.extend([
                    r.created_at.map(|t| age(t, now)).unwrap_or_else(dash),
                    r.history.len().to_string(),
                    last.map(|e| e.by.clone()).unwrap_or_else(dash),
                    last.and_then(|e| e.reason.clone()).unwrap_or_else(dash),
                ]);
            }
            row
        });
        std::iter::once(header.into_iter().map(String::from).collect())
            .chain(rows)
            .collect()
    }
}

/// `workflow.argoproj.io/NAME` lines, for scripts.
pub fn names(records: &[StageRecord]) -> String {
    records
        .iter()
        .map(|r| resource_name(&r.name) + "\n")
        .collect()
}

pub fn render<T: Serialize>(value: &T, format: Format) -> String {
    match format {
        Format::Yaml => to_yaml(value),
        _ => to_json(value),
    }
}

/// Left-aligned columns three spaces apart, as kubectl prints them.
pub fn columns(rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = rows.into_iter().collect();
    in_columns(&rows, &mut Vec::new())
}

/// Rows in columns at least as wide as `widths`, which grow to fit them: a stream of rows
/// (`get --watch`) keeps its columns from one batch to the next.
pub fn in_columns(rows: &[Vec<String>], widths: &mut Vec<usize>) -> String {
    for row in rows {
        widen(widths, row);
    }
    rows.iter().map(|row| aligned(row, widths)).collect()
}

fn widen(widths: &mut Vec<usize>, row: &[String]) {
    if widths.len() < row.len() {
        widths.resize(row.len(), 0);
    }
    for (width, cell) in widths.iter_mut().zip(row) {
        *width = (*width).max(cell.chars().count());
    }
}

fn aligned(row: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, cell) in row.iter().enumerate() {
        if i + 1 == row.len() {
            line.push_str(cell);
        } else {
            line.push_str(&format!("{cell:<width$}   ", width = widths[i]));
        }
    }
    line.truncate(line.trim_end().len());
    line + "\n"
}

/// kubectl's short human durations: 45s, 3m20s, 17m, 5h3m, 30h, 3d4h, 12d, 2y.
pub fn age(then: Timestamp, now: Timestamp) -> String {
    let secs = (now.as_second() - then.as_second()).max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{m}m{}s", s % 60),
        s if s < 3 * 3600 => format!("{m}m"),
        s if s < 8 * 3600 => format!("{h}h{}m", m % 60),
        s if s < 48 * 3600 => format!("{h}h"),
        s if s < 8 * 86_400 => format!("{d}d{}h", h % 24),
        s if s < 2 * 365 * 86_400 => format!("{d}d"),
        _ => format!("{}y", d / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that went away is told apart from one that is there; neither ends the process.
    #[test]
    fn a_closed_stdout_stops_the_printing_only() {
        struct Closed;
        impl std::io::Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        assert_eq!(write_to(&mut Closed, "x\n"), Printed::ReaderGone);
        let mut open = Vec::new();
        assert_eq!(write_to(&mut open, "x\n"), Printed::Yes);
        assert_eq!(open, b"x\n");
    }

    #[test]
    fn ages_read_like_kubectl() {
        let now = Timestamp::from_second(1_000_000_000).unwrap();
        let ago = |s: i64| age(Timestamp::from_second(1_000_000_000 - s).unwrap(), now);
        assert_eq!(ago(5), "5s");
        assert_eq!(ago(200), "3m20s");
        assert_eq!(ago(1800), "30m");
        assert_eq!(ago(5 * 3600 + 180), "5h3m");
        assert_eq!(ago(30 * 3600), "30h");
        assert_eq!(ago(3 * 86_400 + 4 * 3600), "3d4h");
        assert_eq!(ago(800 * 86_400), "2y");
        assert_eq!(ago(-5), "0s");
    }

    #[test]
    fn columns_align_and_never_trail_spaces() {
        let out = columns([
            vec!["NAME".into(), "STAGE".into()],
            vec!["play-a-long-name".into(), "pending".into()],
        ]);
        assert_eq!(
            out,
            "NAME               STAGE\nplay-a-long-name   pending\n"
        );
    }
}
