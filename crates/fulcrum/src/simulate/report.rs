//! Tables and report sections: each scenario returns a [`Section`] whose
//! markdown goes into `report.md` and whose tables are also printed.

/// A table with a header row; cells are preformatted text. Rendered as a
/// markdown table with padded columns, so it reads the same in a terminal.
pub(crate) struct Table {
    pub(crate) headers: Vec<String>,
    pub(crate) rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Self {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The table as markdown; the first column left-aligned, numbers right.
    pub(crate) fn markdown(&self) -> String {
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|c| {
                std::iter::once(&self.headers)
                    .chain(&self.rows)
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
                    .max(3)
            })
            .collect();
        let line = |cells: &[String]| {
            let mut s = String::from("|");
            for (c, w) in widths.iter().enumerate() {
                let cell = cells.get(c).map_or("", String::as_str);
                if c == 0 {
                    s.push_str(&format!(" {cell:<w$} |"));
                } else {
                    s.push_str(&format!(" {cell:>w$} |"));
                }
            }
            s.push('\n');
            s
        };
        let mut out = line(&self.headers);
        out.push('|');
        for (c, w) in widths.iter().enumerate() {
            if c == 0 {
                out.push_str(&format!(":{}|", "-".repeat(w + 1)));
            } else {
                out.push_str(&format!("{}:|", "-".repeat(w + 1)));
            }
        }
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

/// One scenario's part of the report.
pub(crate) struct Section {
    /// Markdown, starting with a `## ` heading.
    pub(crate) markdown: String,
    /// (caption, table) to print on stdout.
    pub(crate) tables: Vec<(String, Table)>,
}

/// `x` with `digits` decimals.
pub(crate) fn num(x: f64, digits: usize) -> String {
    format!("{x:.digits$}")
}

/// A fraction as a percentage with `digits` decimals.
pub(crate) fn pct(x: f64, digits: usize) -> String {
    format!("{:.digits$}%", 100.0 * x)
}

/// The `q`-quantile (0..=1) of `values`, nearest rank; 0 for none.
pub(crate) fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// The mean of `values`; 0 for none.
pub(crate) fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_pads_and_aligns() {
        let mut t = Table::new(["n", "max"]);
        t.row(["10", "3.25"]);
        assert_eq!(
            t.markdown(),
            "| n   |  max |\n|:----|-----:|\n| 10  | 3.25 |\n"
        );
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.99), 99.0);
        assert_eq!(quantile(&mut v, 1.0), 100.0);
        assert_eq!(mean(&v), 50.5);
    }
}
