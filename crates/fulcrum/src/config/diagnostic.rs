//! Config problems as a person reads them: file, line, column, the field,
//! what is wrong and how to fix it.

use std::fmt;
use std::ops::Range;

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    /// Dotted path of the offending field, e.g. `clusters[1].endpoints[0].weight`.
    pub field: String,
    pub message: String,
    pub help: Option<String>,
}

/// Every problem found in one file; `Display` prints them in file order.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    pub file: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.diagnostics {
            writeln!(
                f,
                "error: {}:{}:{}: {}: {}",
                self.file, d.line, d.column, d.field, d.message
            )?;
            if let Some(help) = &d.help {
                writeln!(f, "  help: {help}")?;
            }
        }
        let n = self.diagnostics.len();
        write!(
            f,
            "{} problem{} in {}",
            n,
            if n == 1 { "" } else { "s" },
            self.file
        )
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects diagnostics against one source text, turning byte spans into
/// 1-based line and column (columns count characters, as editors do).
pub struct Collector<'a> {
    src: &'a str,
    pub diagnostics: Vec<Diagnostic>,
}

impl<'a> Collector<'a> {
    pub fn new(src: &'a str) -> Self {
        Self {
            src,
            diagnostics: Vec::new(),
        }
    }

    pub fn error(
        &mut self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
        help: Option<String>,
    ) {
        let (line, column) = line_column(self.src, span.start);
        self.diagnostics.push(Diagnostic {
            line,
            column,
            field: field.into(),
            message: message.into(),
            help,
        });
    }

    pub fn finish(mut self, file: &str) -> Result<(), ConfigErrors> {
        if self.diagnostics.is_empty() {
            return Ok(());
        }
        self.diagnostics.sort_by_key(|d| (d.line, d.column));
        Err(ConfigErrors {
            file: file.to_string(),
            diagnostics: self.diagnostics,
        })
    }
}

pub fn line_column(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before
        .get(line_start..)
        .map_or(1, |s| s.chars().count() + 1);
    (line, column)
}

/// The closest candidate to `given` by edit distance, if it is close enough to
/// be a plausible typo.
pub fn did_you_mean<'c>(
    given: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let limit = (given.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (edit_distance(given, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let src = "a = 1\nbb = 2\n";
        assert_eq!(line_column(src, 0), (1, 1));
        assert_eq!(line_column(src, 6), (2, 1));
        assert_eq!(line_column(src, 8), (2, 3));
    }

    #[test]
    fn suggests_close_names_only() {
        let names = ["address", "weight", "zone"];
        assert_eq!(did_you_mean("adress", names), Some("address"));
        assert_eq!(did_you_mean("wieght", names), Some("weight"));
        assert_eq!(did_you_mean("colour", names), None);
    }
}
