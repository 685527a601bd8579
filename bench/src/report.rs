//! The printed table and the results file (`bench/results.json`).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use libctd_core::{Error, Result};
use serde_json::{Value, json};

/// What the phases found: the results file's records and the table's rows.
#[derive(Default)]
pub(crate) struct Report {
    /// The results file's top-level records, by key.
    results: Mutex<serde_json::Map<String, Value>>,
    /// The table, in the order the rows were added.
    rows: Mutex<Vec<Row>>,
}

/// One line of the printed table.
struct Row {
    /// What is measured.
    measure: String,
    /// libctd's figure.
    ours: String,
    /// The reference's figure.
    reference: String,
    /// libctd over the reference, `1.23x`, or empty.
    ratio: String,
    /// The target, or a remark.
    target: String,
    /// Whether the target was met (none: no target).
    met: Option<bool>,
}

impl Report {
    /// Records `value` under `key` in the results file (replacing any).
    pub(crate) fn record(&self, key: &str, value: Value) {
        self.results
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned(), value);
    }

    /// Adds a row to the table: what is measured, libctd's figure, the
    /// reference's, their ratio, the target and whether it was met.
    pub(crate) fn row(
        &self,
        measure: impl Into<String>,
        ours: impl Into<String>,
        reference: impl Into<String>,
        ratio: Option<f64>,
        target: impl Into<String>,
        met: Option<bool>,
    ) {
        self.rows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Row {
                measure: measure.into(),
                ours: ours.into(),
                reference: reference.into(),
                ratio: ratio.map_or_else(String::new, |r| format!("{r:.2}x")),
                target: target.into(),
                met,
            });
    }

    /// Prints the table to stdout.
    pub(crate) fn print_table(&self) {
        let rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        let header = ["measure", "libctd", "reference", "ratio", "target", "met"];
        let cells: Vec<[String; 6]> = rows
            .iter()
            .map(|r| {
                [
                    r.measure.clone(),
                    r.ours.clone(),
                    r.reference.clone(),
                    r.ratio.clone(),
                    r.target.clone(),
                    match r.met {
                        Some(true) => "yes".to_owned(),
                        Some(false) => "NO".to_owned(),
                        None => String::new(),
                    },
                ]
            })
            .collect();
        let mut width = header.map(str::len);
        for c in &cells {
            for (w, s) in width.iter_mut().zip(c) {
                *w = (*w).max(s.chars().count());
            }
        }
        let line = |c: &[String]| {
            let mut s = String::from("|");
            for (w, v) in width.iter().zip(c) {
                let _ = write!(s, " {v:<w$} |");
            }
            s
        };
        println!();
        println!("{}", line(&header.map(str::to_owned)));
        let mut sep = String::from("|");
        for w in width {
            let _ = write!(sep, "{}|", "-".repeat(w + 2));
        }
        println!("{sep}");
        for c in &cells {
            println!("{}", line(c));
        }
        println!();
    }

    /// Writes the records and the table to `out` as JSON.
    pub(crate) fn write(&self, out: &Path) -> Result<()> {
        let mut results = self
            .results
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        results.insert(
            "table".to_owned(),
            rows.iter()
                .map(|r| {
                    json!({
                        "measure": r.measure, "libctd": r.ours, "reference": r.reference,
                        "ratio": r.ratio, "target": r.target, "met": r.met,
                    })
                })
                .collect(),
        );
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::system(format!("cannot create {}", dir.display())).with_source(e)
            })?;
        }
        let text = serde_json::to_string_pretty(&Value::Object(results))
            .map_err(|e| Error::system("cannot serialise the results").with_source(e))?;
        std::fs::write(out, text + "\n")
            .map_err(|e| Error::system(format!("cannot write {}", out.display())).with_source(e))?;
        println!("bench: results written to {}", out.display());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_records_and_the_table() {
        let report = Report::default();
        report.record("machine", json!({"cpus": 2}));
        report.row(
            "lifecycle p50 ms",
            "1.0",
            "ctr 2.0",
            Some(0.5),
            "<= 0.6x",
            Some(true),
        );
        report.row("  steps", "a / b", "", None, "", None);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("bench/results.json");
        report.write(&out).unwrap();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(v["machine"]["cpus"], 2);
        assert_eq!(v["table"][0]["ratio"], "0.50x");
        assert_eq!(v["table"][0]["met"], true);
        assert_eq!(v["table"][1]["met"], Value::Null);
    }
}
