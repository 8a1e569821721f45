//! Line charts as SVG with `plotters` (SVG backend only: no font files, no
//! bitmap encoders; the viewer renders the text). Every chart has a title,
//! labelled axes and a legend, so a plot read on its own still says what it
//! shows.

use std::path::Path;

use anyhow::Context;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::element::DashedPathElement;
use plotters::prelude::*;

/// How a series is drawn.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Measured, at a few points: a line with markers.
    Measured,
    /// Measured, many points (a time series): a plain line.
    Trace,
    /// Theory or a reference level: dashed, no markers.
    Theory,
}

pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) points: Vec<(f64, f64)>,
    pub(crate) kind: Kind,
    /// Index into the palette, so a theory line can share its algorithm's
    /// colour.
    pub(crate) color: usize,
    /// Drawn wider than the others, so that a series it coincides with,
    /// drawn later on top, leaves it showing as a halo.
    pub(crate) wide: bool,
}

impl Series {
    pub(crate) fn new(
        name: impl Into<String>,
        kind: Kind,
        color: usize,
        points: Vec<(f64, f64)>,
    ) -> Self {
        Self {
            name: name.into(),
            points,
            kind,
            color,
            wide: false,
        }
    }

    /// See [`Series::wide`].
    pub(crate) fn wide(self) -> Self {
        Self { wide: true, ..self }
    }
}

pub(crate) struct Chart {
    pub(crate) title: String,
    pub(crate) x_label: String,
    pub(crate) y_label: String,
    pub(crate) x_log: bool,
    pub(crate) y_log: bool,
    /// Start the y axis at 0 (linear axes only).
    pub(crate) y_from_zero: bool,
    pub(crate) legend: SeriesLabelPosition,
    pub(crate) series: Vec<Series>,
}

/// Tableau 10: distinct, colour-blind-aware hues.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Axis numbers: integers plainly, with thousands separated, small values
/// with as many decimals as they need.
fn tick(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 && (v - v.round()).abs() < 1e-9 {
        let digits = format!("{}", v.round() as i64);
        let mut out = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) && ch != '-' {
                out.push(' ');
            }
            out.push(ch);
        }
        out
    } else if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else if a >= 10.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Writes `chart` to `path` as an SVG of 960 x 600.
pub(crate) fn line_chart(path: &Path, chart: &Chart) -> anyhow::Result<()> {
    let points = || chart.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points() {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    anyhow::ensure!(x0 <= x1 && y0 <= y1, "no points to plot in {}", chart.title);
    if x0 == x1 {
        x1 = x0 + 1.0;
    }
    let (y0, y1) = if chart.y_log {
        (y0.max(1e-3) / 1.3, y1 * 1.3)
    } else {
        let lo = if chart.y_from_zero { 0.0 } else { y0 };
        let hi = if y1 > lo { y1 } else { lo + 1.0 };
        (
            if chart.y_from_zero {
                0.0
            } else {
                lo - 0.05 * (hi - lo)
            },
            hi + 0.08 * (hi - lo),
        )
    };
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    match (chart.x_log, chart.y_log) {
        (false, false) => draw(&root, chart, x0..x1, y0..y1),
        (true, false) => draw(&root, chart, (x0..x1).log_scale(), y0..y1),
        (false, true) => draw(&root, chart, x0..x1, (y0..y1).log_scale()),
        (true, true) => draw(&root, chart, (x0..x1).log_scale(), (y0..y1).log_scale()),
    }
    .with_context(|| format!("drawing {}", path.display()))?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    drop(root);
    add_title(path, &chart.title)
}

/// Adds an SVG `<title>` (the chart's title) after the opening tag, for
/// screen readers and as the name browsers show for the file.
fn add_title(path: &Path, title: &str) -> anyhow::Result<()> {
    let svg =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let Some(end) = svg.find('>') else {
        anyhow::bail!("{} is not an SVG document", path.display());
    };
    let escaped = title
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let out = format!(
        "{}\n<title>{escaped}</title>{}",
        &svg[..=end],
        &svg[end + 1..]
    );
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

fn draw<X, Y>(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    chart: &Chart,
    x: X,
    y: Y,
) -> anyhow::Result<()>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut ctx = ChartBuilder::on(root)
        .caption(&chart.title, ("sans-serif", 24))
        .margin(18)
        .x_label_area_size(56)
        .y_label_area_size(78)
        .build_cartesian_2d(x, y)?;
    ctx.configure_mesh()
        .x_desc(&chart.x_label)
        .y_desc(&chart.y_label)
        .axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 14))
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(210, 210, 210))
        .draw()?;
    for s in &chart.series {
        let color = PALETTE[s.color % PALETTE.len()];
        let width = match (s.kind, s.wide) {
            (_, true) => 8,
            (Kind::Theory, false) => 2,
            _ => 3,
        };
        let style = color.stroke_width(width);
        let points = s.points.iter().copied();
        let drawn = match s.kind {
            Kind::Measured => {
                ctx.draw_series(LineSeries::new(points, style).point_size(width.max(4)))?
            }
            Kind::Trace => ctx.draw_series(LineSeries::new(points, style))?,
            Kind::Theory => ctx.draw_series(DashedLineSeries::new(points, 8, 5, style))?,
        };
        let dashed = s.kind == Kind::Theory;
        drawn.label(&s.name).legend(move |(x, y)| {
            let path = vec![(x, y), (x + 24, y)];
            if dashed {
                DashedPathElement::new(path, 7, 4, style).into_dyn()
            } else {
                PathElement::new(path, style).into_dyn()
            }
        });
    }
    ctx.configure_series_labels()
        .position(chart.legend.clone())
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(160, 160, 160))
        .label_font(("sans-serif", 15))
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::tick;

    #[test]
    fn ticks_read_well() {
        assert_eq!(tick(10_000.0), "10 000");
        assert_eq!(tick(300.0), "300");
        assert_eq!(tick(1.5), "1.50");
        assert_eq!(tick(0.25), "0.250");
    }
}
