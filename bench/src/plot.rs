//! Charts of benchmark results, each written twice: `<stem>.png` for a quick
//! look and `<stem>.svg` for reports. Generic on purpose: line charts of any
//! (x, y) series on linear or log axes, and grouped bar charts.
//!
//! Text is drawn with ab_glyph from a TrueType font read at run time, so the
//! build needs no fontconfig or freetype: `fonts-dejavu-core` (installed by
//! scripts/setup) provides it, and `VEXFS_BENCH_FONT=/path/to/font.ttf`
//! chooses another.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One named line (or, in a bar chart, one bar per category).
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

#[derive(Clone, Copy)]
pub enum Axis {
    Linear,
    Log,
}

pub struct LineChart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub x_axis: Axis,
    pub y_axis: Axis,
    pub series: &'a [Series],
}

/// Pixels of the PNG; the SVG has the same user units.
const CHART_WIDTH_PX: u32 = 1100;
const CHART_HEIGHT_PX: u32 = 680;
/// Limits that keep a chart readable and its drawing bounded.
const SERIES_MAX: usize = 32;
const POINTS_PER_SERIES_MAX: usize = 100_000;
const CATEGORIES_MAX: usize = 64;
/// A bar chart whose largest value exceeds its smallest by more than this
/// ratio gets a log y axis: otherwise the small bars vanish.
const BAR_LOG_RATIO_MIN: f64 = 100.0;

/// The family name under which the loaded font is registered with plotters.
const FONT_FAMILY: &str = "sans-serif";
const FONT_ENV: &str = "VEXFS_BENCH_FONT";
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];
const FONT_PACKAGE: &str = "fonts-dejavu-core";

/// Colours that stay distinct on white and for common colour blindness (Okabe–Ito, then Tableau).
const COLOURS: &[RGBColor] = &[
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(240, 228, 66),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn colour(index: usize) -> RGBColor {
    COLOURS[index % COLOURS.len()]
}

/// Draws the same picture with the bitmap and the SVG backend: `draw` is
/// called once per backend (a closure cannot be generic, so it is a macro).
macro_rules! render {
    ($stem:expr, |$root:ident| $draw:expr) => {{
        ensure_font()?;
        let png = $stem.with_extension("png");
        let svg = $stem.with_extension("svg");
        {
            let $root =
                BitMapBackend::new(&png, (CHART_WIDTH_PX, CHART_HEIGHT_PX)).into_drawing_area();
            $draw.with_context(|| format!("drawing {}", png.display()))?;
            $root
                .present()
                .map_err(|e| anyhow!("writing {}: {e}", png.display()))?;
        }
        {
            let $root =
                SVGBackend::new(&svg, (CHART_WIDTH_PX, CHART_HEIGHT_PX)).into_drawing_area();
            $draw.with_context(|| format!("drawing {}", svg.display()))?;
            $root
                .present()
                .map_err(|e| anyhow!("writing {}: {e}", svg.display()))?;
        }
        Ok(vec![png, svg])
    }};
}

/// Writes `<stem>.png` and `<stem>.svg`; returns both paths.
pub fn line_chart(stem: &Path, chart: &LineChart) -> Result<Vec<PathBuf>> {
    if chart.series.len() > SERIES_MAX {
        bail!(
            "{}: {} series, at most {SERIES_MAX}",
            chart.title,
            chart.series.len()
        );
    }
    for series in chart.series {
        if series.points.len() > POINTS_PER_SERIES_MAX {
            bail!(
                "{}: series {} has {} points, at most {POINTS_PER_SERIES_MAX}",
                chart.title,
                series.name,
                series.points.len()
            );
        }
    }
    let usable = |axis: Axis, v: f64| v.is_finite() && (matches!(axis, Axis::Linear) || v > 0.0);
    let points = || {
        chart
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|&&(x, y)| usable(chart.x_axis, x) && usable(chart.y_axis, y))
    };
    let x_range = span(points().map(|p| p.0), chart.x_axis);
    let y_range = span(points().map(|p| p.1), chart.y_axis);
    render!(stem, |root| {
        let (x, y) = (x_range.clone(), y_range.clone());
        match (chart.x_axis, chart.y_axis) {
            (Axis::Linear, Axis::Linear) => draw_lines(&root, chart, x, y),
            (Axis::Linear, Axis::Log) => draw_lines(&root, chart, x, y.log_scale()),
            (Axis::Log, Axis::Linear) => draw_lines(&root, chart, x.log_scale(), y),
            (Axis::Log, Axis::Log) => draw_lines(&root, chart, x.log_scale(), y.log_scale()),
        }
    })
}

/// Groups of bars: one group per category (x), one bar per series within it.
/// A series' points are (category index, value); values ≤ 0 or not finite
/// are left out. The y axis turns logarithmic (and says so) when the values
/// span more than [`BAR_LOG_RATIO_MIN`].
pub fn bar_chart(
    stem: &Path,
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[Series],
) -> Result<Vec<PathBuf>> {
    if categories.is_empty() || categories.len() > CATEGORIES_MAX {
        bail!(
            "{title}: {} categories, 1 to {CATEGORIES_MAX} allowed",
            categories.len()
        );
    }
    if series.is_empty() || series.len() > SERIES_MAX {
        bail!(
            "{title}: {} series, 1 to {SERIES_MAX} allowed",
            series.len()
        );
    }
    let bars: Vec<(usize, usize, f64)> = series
        .iter()
        .enumerate()
        .flat_map(|(s, one)| one.points.iter().map(move |&(c, v)| (s, c, v)))
        .filter(|&(_, c, v)| {
            v.is_finite() && v > 0.0 && c >= 0.0 && (c as usize) < categories.len()
        })
        .map(|(s, c, v)| (s, c as usize, v))
        .collect();
    let y_max = bars.iter().map(|b| b.2).fold(0.0, f64::max);
    let y_min = bars.iter().map(|b| b.2).fold(f64::INFINITY, f64::min);
    let log = !bars.is_empty() && y_max / y_min > BAR_LOG_RATIO_MIN;
    let y_label = if log {
        format!("{y_label} (log scale)")
    } else {
        y_label.to_string()
    };
    let bar = BarPlan {
        title,
        y_label: &y_label,
        categories,
        series,
        bars: &bars,
    };
    render!(stem, |root| {
        if log {
            let y = (y_min / 2.0)..(y_max * 2.0);
            draw_bars(&root, &bar, y.log_scale(), y_min / 2.0)
        } else {
            let top = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
            draw_bars(&root, &bar, 0.0..top, 0.0)
        }
    })
}

struct BarPlan<'a> {
    title: &'a str,
    y_label: &'a str,
    categories: &'a [String],
    series: &'a [Series],
    bars: &'a [(usize, usize, f64)],
}

/// The range covering `values` with a margin, never empty; a log axis starts above zero.
fn span(values: impl Iterator<Item = f64>, axis: Axis) -> Range<f64> {
    let (mut low, mut high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if !low.is_finite() || !high.is_finite() {
        return match axis {
            Axis::Linear => 0.0..1.0,
            Axis::Log => 1.0..10.0,
        };
    }
    match axis {
        Axis::Linear => {
            if low == high {
                low -= 1.0;
                high += 1.0;
            }
            let margin = (high - low) * 0.05;
            (low - margin)..(high + margin)
        }
        Axis::Log => {
            if low == high {
                low /= 2.0;
                high *= 2.0;
            }
            (low / 1.2)..(high * 1.2)
        }
    }
}

fn draw_lines<DB: DrawingBackend, X, Y>(
    root: &DrawingArea<DB, Shift>,
    chart: &LineChart,
    x: X,
    y: Y,
) -> Result<()>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(plot_error)?;
    let mut context = ChartBuilder::on(root)
        .caption(chart.title, (FONT_FAMILY, 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(x, y)
        .map_err(plot_error)?;
    context
        .configure_mesh()
        .x_desc(chart.x_label)
        .y_desc(chart.y_label)
        .x_label_formatter(&|v| number(*v))
        .y_label_formatter(&|v| number(*v))
        .label_style((FONT_FAMILY, 14))
        .axis_desc_style((FONT_FAMILY, 16))
        .draw()
        .map_err(plot_error)?;
    for (index, series) in chart.series.iter().enumerate() {
        let style = ShapeStyle::from(&colour(index)).stroke_width(2);
        let points = series.points.iter().copied().filter(|&(x, y)| {
            x.is_finite()
                && y.is_finite()
                && (matches!(chart.x_axis, Axis::Linear) || x > 0.0)
                && (matches!(chart.y_axis, Axis::Linear) || y > 0.0)
        });
        context
            .draw_series(LineSeries::new(points, style))
            .map_err(plot_error)?
            .label(series.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    context
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT_FAMILY, 14))
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

fn draw_bars<DB: DrawingBackend, Y>(
    root: &DrawingArea<DB, Shift>,
    plan: &BarPlan,
    y: Y,
    y_floor: f64,
) -> Result<()>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
    DB::ErrorType: 'static,
{
    let groups = plan.categories.len();
    let x = -0.5..groups as f64 - 0.5;
    root.fill(&WHITE).map_err(plot_error)?;
    let mut context = ChartBuilder::on(root)
        .caption(plan.title, (FONT_FAMILY, 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(x, y)
        .map_err(plot_error)?;
    context
        .configure_mesh()
        .disable_x_mesh()
        // Category names are written under each group below, not at the
        // round numbers the mesh would choose.
        .x_labels(0)
        .y_label_formatter(&|v| number(*v))
        .y_desc(plan.y_label)
        .label_style((FONT_FAMILY, 13))
        .axis_desc_style((FONT_FAMILY, 16))
        .draw()
        .map_err(plot_error)?;
    // Bars of one group share 80 % of a category's width.
    let width = 0.8 / plan.series.len() as f64;
    for (index, series) in plan.series.iter().enumerate() {
        let fill = colour(index).filled();
        let rectangles = plan.bars.iter().filter(|b| b.0 == index).map(|&(_, c, v)| {
            let left = c as f64 - 0.4 + width * index as f64;
            Rectangle::new([(left, y_floor), (left + width, v)], fill)
        });
        context
            .draw_series(rectangles)
            .map_err(plot_error)?
            .label(series.name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], fill));
    }
    let label =
        TextStyle::from((FONT_FAMILY, 11).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (index, name) in plan.categories.iter().enumerate() {
        let (x, y) = context.backend_coord(&(index as f64, y_floor));
        root.draw(&Text::new(name.as_str(), (x, y + 8), label.clone()))
            .map_err(plot_error)?;
    }
    context
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT_FAMILY, 14))
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

/// Axis numbers a reader takes in at a glance: 1.5k, 20k, 3M, 0.25.
fn number(v: f64) -> String {
    let magnitude = v.abs();
    let (scaled, suffix) = if magnitude >= 1e9 {
        (v / 1e9, "G")
    } else if magnitude >= 1e6 {
        (v / 1e6, "M")
    } else if magnitude >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let text = if scaled == scaled.trunc() {
        format!("{scaled:.0}")
    } else if scaled.abs() >= 10.0 {
        format!("{scaled:.1}")
    } else {
        format!("{scaled:.3}")
    };
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{suffix}")
}

fn plot_error<E: std::error::Error>(error: E) -> anyhow::Error {
    anyhow!("plotters: {error}")
}

/// Loads the TTF once per process and registers it with plotters.
fn ensure_font() -> Result<()> {
    static LOADED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let candidates: Vec<PathBuf> = match std::env::var_os(FONT_ENV) {
                Some(path) => vec![PathBuf::from(path)],
                None => FONT_PATHS.iter().map(PathBuf::from).collect(),
            };
            let Some(path) = candidates.iter().find(|p| p.is_file()) else {
                return Err(format!(
                    "no TrueType font for chart text: looked for {}; install the Debian package {FONT_PACKAGE} (scripts/setup does) or set {FONT_ENV}",
                    candidates
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            };
            let bytes = std::fs::read(path)
                .map_err(|e| format!("reading font {}: {e}", path.display()))?;
            // plotters keeps registered fonts for the life of the process and
            // wants them 'static; this runs once, so the leak is one font file.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, bytes)
                .map_err(|_| format!("{} is not a TrueType/OpenType font", path.display()))
        })
        .clone()
        .map_err(|message| anyhow!(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_at_a_glance() {
        assert_eq!(number(1500.0), "1500");
        assert_eq!(number(20_000.0), "20k");
        assert_eq!(number(3_000_000.0), "3M");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(12.5), "12.5");
    }

    #[test]
    fn charts_are_written_in_both_formats() {
        let dir = std::env::temp_dir().join(format!("vexfs-plot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let series = [
            Series {
                name: "a".into(),
                points: vec![(1.0, 10.0), (10.0, 20.0), (1000.0, 400.0)],
            },
            Series {
                name: "b".into(),
                points: vec![(1.0, 5.0), (100.0, 8.0)],
            },
        ];
        let chart = LineChart {
            title: "test",
            x_label: "x",
            y_label: "y",
            x_axis: Axis::Log,
            y_axis: Axis::Log,
            series: &series,
        };
        let outcome = line_chart(&dir.join("lines"), &chart).and_then(|mut written| {
            let categories = vec!["one".to_string(), "two".to_string()];
            written.extend(bar_chart(
                &dir.join("bars"),
                "bars",
                "ops/s",
                &categories,
                &series,
            )?);
            Ok(written)
        });
        match outcome {
            Ok(written) => {
                for path in written {
                    let bytes = std::fs::read(&path).unwrap();
                    if path.extension().is_some_and(|e| e == "png") {
                        assert!(
                            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
                            "{}",
                            path.display()
                        );
                    } else {
                        assert!(String::from_utf8_lossy(&bytes).contains("<svg"));
                    }
                }
            }
            // A machine without the font: the error must say what to install.
            Err(error) if !Path::new(FONT_PATHS[0]).exists() => {
                assert!(format!("{error:#}").contains(FONT_PACKAGE));
            }
            Err(error) => panic!("{error:#}"),
        }
        if std::env::var_os("VEXFS_PLOT_TEST_KEEP").is_none() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
