//! `postern-bench chart`: a PNG bar chart of the Postern/nginx ratios in a
//! results file written by `scripts/bench.sh`.
//!
//! The input is JSON lines; the chart is drawn from the last line whose
//! `kind` is `"summary"`. Each of its `rows` with a numeric
//! `postern_vs_nginx` becomes one horizontal bar, green where Postern is
//! ahead (a ratio above 1 for a figure where higher is better, below 1 where
//! lower is better) and red where it is behind, with a line at 1.0.
//!
//! Text is drawn with a TrueType font read at run time (`--font`, else the
//! first of [`FONT_CANDIDATES`] that exists, else the first `.ttf` found
//! under `/usr/share/fonts`). Without one the chart has bars only and the
//! labels go to a `.txt` file beside the PNG.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::Value;

/// Fonts tried, in order, when `--font` is not given.
pub const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// Font family name the loaded font is registered under.
const FAMILY: &str = "sans-serif";

const WIDTH: u32 = 1280;
const ROW_HEIGHT: u32 = 40;
const TOP: u32 = 90;
const BOTTOM: u32 = 60;
const LABEL_WIDTH: i32 = 520;
const RIGHT_MARGIN: i32 = 90;

const AHEAD: RGBColor = RGBColor(46, 139, 87);
const BEHIND: RGBColor = RGBColor(200, 70, 60);
const GRID: RGBColor = RGBColor(225, 225, 225);

/// One bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    /// Postern's figure divided by nginx's.
    pub ratio: f64,
    /// Whether a larger figure is better (a rate) or a smaller one (CPU,
    /// latency, memory).
    pub higher_is_better: bool,
}

impl Bar {
    /// Whether Postern is ahead of nginx on this figure.
    pub fn postern_ahead(&self) -> bool {
        if self.higher_is_better {
            self.ratio > 1.0
        } else {
            self.ratio < 1.0
        }
    }

    fn text(&self) -> String {
        let better = if self.higher_is_better { "higher" } else { "lower" };
        format!("{} ({better} is better)", self.label)
    }
}

/// What the chart shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub title: String,
    pub bars: Vec<Bar>,
}

/// The last summary line of `text` (JSON lines), as bars.
pub fn read_summary(text: &str) -> Result<Summary, String> {
    let line = text
        .lines()
        .rev()
        .filter(|line| line.contains("\"summary\""))
        .find_map(|line| {
            serde_json::from_str::<Value>(line)
                .ok()
                .filter(|v| v.get("kind").and_then(Value::as_str) == Some("summary"))
        })
        .ok_or("no line with \"kind\":\"summary\"")?;
    let rows = line
        .get("rows")
        .and_then(Value::as_array)
        .ok_or("the summary has no \"rows\" array")?;
    let mut bars = Vec::new();
    for row in rows {
        let Some(ratio) = row.get("postern_vs_nginx").and_then(Value::as_f64) else {
            continue;
        };
        if !(ratio.is_finite() && ratio >= 0.0) {
            continue;
        }
        let label = row
            .get("label")
            .and_then(Value::as_str)
            .ok_or("a summary row has no \"label\"")?
            .to_string();
        let higher_is_better = match row.get("better").and_then(Value::as_str) {
            Some("higher") => true,
            Some("lower") => false,
            other => {
                return Err(format!(
                    "row {label:?}: \"better\" is {other:?}, not \"higher\" or \"lower\""
                ))
            }
        };
        bars.push(Bar {
            label,
            ratio,
            higher_is_better,
        });
    }
    let field = |name: &str| match line.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "?".to_string(),
    };
    let title = format!(
        "Postern / nginx (nginx at the better of default and 64k buffers): commit {}, {}, {} core(s), median of {} round(s)",
        field("commit"),
        field("run"),
        field("cores"),
        field("rounds")
    );
    Ok(Summary { title, bars })
}

/// The bytes of the font to draw text with: `explicit` if given (an error
/// if it cannot be read), else the first candidate that can be read.
pub fn find_font(explicit: Option<&Path>) -> Result<Option<Vec<u8>>, String> {
    if let Some(path) = explicit {
        return std::fs::read(path)
            .map(Some)
            .map_err(|e| format!("cannot read font {}: {e}", path.display()));
    }
    if let Some(bytes) = FONT_CANDIDATES.iter().find_map(|path| std::fs::read(path).ok()) {
        return Ok(Some(bytes));
    }
    Ok(first_ttf(Path::new("/usr/share/fonts"), 4).and_then(|path| std::fs::read(path).ok()))
}

/// The first `.ttf` file under `dir` (sorted, at most `depth` levels down).
fn first_ttf(dir: &Path, depth: u32) -> Option<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in &entries {
        if path.is_file() && path.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("ttf")) {
            return Some(path.clone());
        }
    }
    if depth == 0 {
        return None;
    }
    entries
        .iter()
        .filter(|p| p.is_dir())
        .find_map(|p| first_ttf(p, depth - 1))
}

/// Registers `bytes` as the font text is drawn with. The bytes live for the
/// rest of the process (plotters keeps a `&'static` reference).
pub fn register_font(bytes: Vec<u8>) -> Result<(), String> {
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FAMILY, FontStyle::Normal, bytes)
        .map_err(|_| "the font file is not a usable TrueType/OpenType font".to_string())
}

/// The labels, one per bar from top to bottom, as written to the `.txt`
/// file of a chart drawn without text.
pub fn labels_text(summary: &Summary) -> String {
    let mut out = format!("{}\n", summary.title);
    for (i, bar) in summary.bars.iter().enumerate() {
        let side = if bar.postern_ahead() {
            "Postern ahead"
        } else {
            "Postern behind"
        };
        let _ = writeln!(out, "{}. {}: {:.2}x ({side})", i + 1, bar.text(), bar.ratio);
    }
    out
}

/// Upper end of the ratio axis: room past the longest bar, at least 2.
fn axis_max(bars: &[Bar]) -> f64 {
    let longest = bars.iter().map(|b| b.ratio).fold(0.0, f64::max);
    let max = (longest * 1.1).max(2.0);
    (max * 2.0).ceil() / 2.0
}

/// Spacing of the vertical grid lines for an axis that ends at `max`.
fn tick_step(max: f64) -> f64 {
    [0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0]
        .into_iter()
        .find(|step| max / step <= 10.0)
        .unwrap_or(100.0)
}

/// Draws `summary` into the PNG `output`; with `text` false, bars, grid and
/// the 1.0 line only (no font is needed).
pub fn render(summary: &Summary, output: &Path, text: bool) -> Result<(), String> {
    if summary.bars.is_empty() {
        return Err("no row has a Postern/nginx ratio (was nginx measured?)".into());
    }
    let rows = summary.bars.len() as u32;
    let height = TOP + rows * ROW_HEIGHT + BOTTOM;
    let root = BitMapBackend::new(output, (WIDTH, height)).into_drawing_area();
    let err = |e: DrawingAreaErrorKind<_>| format!("cannot draw {}: {e}", output.display());
    root.fill(&WHITE).map_err(err)?;

    let x0 = LABEL_WIDTH;
    let x1 = WIDTH as i32 - RIGHT_MARGIN;
    let y0 = TOP as i32;
    let y1 = (TOP + rows * ROW_HEIGHT) as i32;
    let max = axis_max(&summary.bars);
    let x_of = |ratio: f64| x0 + ((ratio / max) * f64::from(x1 - x0)).round() as i32;

    let step = tick_step(max);
    let ticks: Vec<f64> = (0..)
        .map(|i| f64::from(i) * step)
        .take_while(|t| *t <= max + 1e-9)
        .collect();
    for &tick in &ticks {
        let x = x_of(tick);
        root.draw(&PathElement::new(vec![(x, y0), (x, y1)], GRID.stroke_width(1)))
            .map_err(err)?;
    }
    for (i, bar) in summary.bars.iter().enumerate() {
        let top = y0 + (i as i32) * ROW_HEIGHT as i32 + 7;
        let bottom = top + ROW_HEIGHT as i32 - 14;
        let color = if bar.postern_ahead() { AHEAD } else { BEHIND };
        let end = x_of(bar.ratio.min(max)).max(x0 + 1);
        root.draw(&Rectangle::new([(x0, top), (end, bottom)], color.filled()))
            .map_err(err)?;
    }
    let one = x_of(1.0);
    root.draw(&PathElement::new(
        vec![(one, y0 - 6), (one, y1 + 6)],
        BLACK.stroke_width(2),
    ))
    .map_err(err)?;
    root.draw(&PathElement::new(vec![(x0, y1), (x1, y1)], BLACK.stroke_width(1)))
        .map_err(err)?;

    if text {
        let font = |size: f64| TextStyle::from((FAMILY, size).into_font()).color(&BLACK);
        let title = font(17.0).pos(Pos::new(HPos::Left, VPos::Top));
        root.draw(&Text::new(summary.title.clone(), (16, 14), title))
            .map_err(err)?;
        let legend = font(15.0).pos(Pos::new(HPos::Left, VPos::Top));
        root.draw(&Text::new(
            "green: Postern ahead, red: Postern behind; the black line is parity (1.0x)".to_string(),
            (16, 44),
            legend,
        ))
        .map_err(err)?;
        let label = font(15.0).pos(Pos::new(HPos::Right, VPos::Center));
        let value = font(15.0).pos(Pos::new(HPos::Left, VPos::Center));
        for (i, bar) in summary.bars.iter().enumerate() {
            let mid = y0 + (i as i32) * ROW_HEIGHT as i32 + ROW_HEIGHT as i32 / 2;
            root.draw(&Text::new(bar.text(), (x0 - 10, mid), label.clone()))
                .map_err(err)?;
            // Past the parity line when the bar ends just short of it.
            let end = x_of(bar.ratio.min(max));
            let at = if end < one && one - end < 48 { one + 6 } else { end + 6 };
            root.draw(&Text::new(format!("{:.2}x", bar.ratio), (at, mid), value.clone()))
                .map_err(err)?;
        }
        let tick_style = font(14.0).pos(Pos::new(HPos::Center, VPos::Top));
        for &tick in &ticks {
            root.draw(&Text::new(format!("{tick}x"), (x_of(tick), y1 + 8), tick_style.clone()))
                .map_err(err)?;
        }
        let axis = font(15.0).pos(Pos::new(HPos::Center, VPos::Top));
        root.draw(&Text::new(
            "Postern's figure / nginx's figure".to_string(),
            ((x0 + x1) / 2, y1 + 32),
            axis,
        ))
        .map_err(err)?;
    }
    root.present().map_err(err)
}

/// `postern-bench chart`: reads `input`, writes the PNG `output` and, when
/// no font can be had, the labels to `output` with the extension `.txt`.
/// Returns a line for the user.
pub fn run(input: &Path, output: &Path, font: Option<&Path>) -> Result<String, String> {
    let text = std::fs::read_to_string(input).map_err(|e| format!("cannot read {}: {e}", input.display()))?;
    let summary = read_summary(&text).map_err(|e| format!("{}: {e}", input.display()))?;
    let with_text = match find_font(font)? {
        Some(bytes) => match register_font(bytes) {
            Ok(()) => true,
            Err(e) if font.is_some() => return Err(e),
            Err(_) => false,
        },
        None => false,
    };
    render(&summary, output, with_text)?;
    if with_text {
        return Ok(format!("chart: {} bar(s) in {}", summary.bars.len(), output.display()));
    }
    let labels = output.with_extension("txt");
    std::fs::write(&labels, labels_text(&summary)).map_err(|e| format!("cannot write {}: {e}", labels.display()))?;
    Ok(format!(
        "chart: {} bar(s) in {} without text (no usable font found); the labels are in {}",
        summary.bars.len(),
        output.display(),
        labels.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESULTS: &str = concat!(
        r#"{"mode":"login","target":"postern","ops_per_s":4800.0}"#,
        "\n",
        r#"{"kind":"summary","run":"old","commit":"x","cores":2,"rounds":1,"rows":[]}"#,
        "\n",
        r#"{"kind":"summary","run":"2026-11-26T10:00","commit":"abc1234","cores":2,"rounds":3,"rows":["#,
        r#"{"scenario":"login-imap","label":"IMAP logins/s","better":"higher","postern_vs_nginx":0.72},"#,
        r#"{"scenario":"login-imap","label":"IMAP CPU per login","better":"lower","postern_vs_nginx":1.8},"#,
        r#"{"scenario":"idle","label":"idle PSS per session","better":"lower","postern_vs_nginx":0.5},"#,
        r#"{"scenario":"bulk-1","label":"bulk MB/s","better":"higher","postern_vs_nginx":null}]}"#,
        "\n"
    );

    #[test]
    fn reads_the_last_summary_and_skips_rows_without_a_ratio() {
        let summary = read_summary(RESULTS).unwrap();
        assert!(summary.title.contains("abc1234"), "{}", summary.title);
        assert!(summary.title.contains("3 round(s)"), "{}", summary.title);
        assert_eq!(summary.bars.len(), 3);
        assert_eq!(
            summary.bars[0],
            Bar {
                label: "IMAP logins/s".into(),
                ratio: 0.72,
                higher_is_better: true
            }
        );
        assert!(!summary.bars[0].postern_ahead());
        assert!(!summary.bars[1].postern_ahead());
        assert!(summary.bars[2].postern_ahead());
    }

    #[test]
    fn a_file_without_a_summary_is_an_error() {
        assert!(read_summary("{\"mode\":\"login\"}\n").is_err());
        assert!(read_summary("").is_err());
    }

    #[test]
    fn a_bad_direction_is_an_error() {
        let line = r#"{"kind":"summary","rows":[{"label":"x","better":"up","postern_vs_nginx":1.0}]}"#;
        assert!(read_summary(line).unwrap_err().contains("better"));
    }

    #[test]
    fn the_axis_leaves_room_and_has_at_most_ten_ticks() {
        let bar = |ratio| Bar {
            label: String::new(),
            ratio,
            higher_is_better: true,
        };
        assert_eq!(axis_max(&[bar(0.5)]), 2.0);
        assert_eq!(axis_max(&[bar(2.3)]), 3.0);
        for max in [2.0, 3.0, 7.5, 40.0] {
            assert!(max / tick_step(max) <= 10.0);
        }
    }

    #[test]
    fn labels_text_lists_every_bar_in_order() {
        let text = labels_text(&read_summary(RESULTS).unwrap());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1], "1. IMAP logins/s (higher is better): 0.72x (Postern behind)");
        assert_eq!(
            lines[3],
            "3. idle PSS per session (lower is better): 0.50x (Postern ahead)"
        );
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("postern-bench-chart-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn draws_a_png_without_text() {
        let dir = scratch("bars");
        let png = dir.join("chart.png");
        render(&read_summary(RESULTS).unwrap(), &png, false).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn run_writes_a_png_and_labels_when_there_is_no_font() {
        let dir = scratch("run");
        let input = dir.join("results.jsonl");
        std::fs::write(&input, RESULTS).unwrap();
        let png = dir.join("chart.png");
        let message = run(&input, &png, None).unwrap();
        assert!(message.contains("3 bar(s)"), "{message}");
        assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG");
        // With a font on this machine the labels are drawn; without one
        // they are in the .txt file.
        assert_eq!(dir.join("chart.txt").exists(), message.contains("without text"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_empty_chart_is_an_error() {
        let summary = Summary {
            title: String::new(),
            bars: Vec::new(),
        };
        assert!(render(&summary, Path::new("/nonexistent/x.png"), false).is_err());
    }
}
