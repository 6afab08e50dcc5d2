//! The parts every study's `report.md` is made of: headed sections,
//! markdown tables, figures, and the relative differences the "published
//! vs ours" tables give.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

/// A markdown table.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The table in GitHub markdown (a `|` in a cell is escaped).
    pub fn to_markdown(&self) -> String {
        let line = |cells: &[String]| {
            let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
            format!("| {} |\n", cells.join(" | "))
        };
        let mut s = line(&self.header);
        s.push_str(&format!("|{}\n", "---|".repeat(self.header.len())));
        for r in &self.rows {
            s.push_str(&line(r));
        }
        s
    }
}

/// A report being written.
#[derive(Debug, Clone, Default)]
pub struct Report {
    text: String,
}

impl Report {
    pub fn new(title: &str) -> Self {
        Self {
            text: format!("# {title}\n\n"),
        }
    }

    pub fn section(&mut self, heading: &str) {
        let _ = write!(self.text, "## {heading}\n\n");
    }

    pub fn paragraph(&mut self, text: &str) {
        let _ = write!(self.text, "{}\n\n", text.trim());
    }

    pub fn bullets<S: AsRef<str>>(&mut self, items: impl IntoIterator<Item = S>) {
        for item in items {
            let _ = writeln!(self.text, "- {}", item.as_ref().trim());
        }
        self.text.push('\n');
    }

    pub fn table(&mut self, table: &Table) {
        self.text.push_str(&table.to_markdown());
        self.text.push('\n');
    }

    /// A figure (path relative to the report) with its caption.
    pub fn figure(&mut self, path: &str, caption: &str) {
        let _ = write!(self.text, "![{caption}]({path})\n\n*{caption}*\n\n");
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Writes `report.md` into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join("report.md");
        std::fs::write(&path, &self.text)
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// `(ours - base) / base`, or None when `base` is 0 or either is not finite.
pub fn relative_change(ours: f64, base: f64) -> Option<f64> {
    (base != 0.0 && ours.is_finite() && base.is_finite()).then(|| (ours - base) / base)
}

/// A fraction as a signed percentage with one decimal (`+12.5 %`), or `-`.
pub fn fmt_pct(v: Option<f64>) -> String {
    match v {
        Some(v) => format!("{:+.1} %", v * 100.0),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_renders_as_markdown_and_escapes_bars() {
        let mut t = Table::new(["a", "b"]);
        t.row(["1", "x|y"]);
        assert_eq!(t.to_markdown(), "| a | b |\n|---|---|\n| 1 | x\\|y |\n");
    }

    #[test]
    fn relative_changes_and_their_text() {
        assert_eq!(relative_change(1.5, 1.0), Some(0.5));
        assert_eq!(relative_change(1.0, 0.0), None);
        assert_eq!(fmt_pct(Some(-0.149)), "-14.9 %");
        assert_eq!(fmt_pct(None), "-");
    }
}
