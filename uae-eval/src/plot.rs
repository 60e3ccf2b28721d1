//! PNG charts for reports: grouped bars of a results table and line charts
//! of training curves, drawn with plotters into an RGB buffer.
//!
//! Text uses DejaVu Sans, embedded (the `dejavu` crate), so charts look the
//! same on every machine and need no system fonts. The PNG file is written
//! here rather than by plotters' image encoder: that encoder pulls in crates
//! whose features would change those Burn shares and force a full rebuild,
//! and an uncompressed-filter RGB PNG is a few lines over flate2 and crc32.

use std::io::Write;
use std::path::Path;
use std::sync::Once;

use anyhow::{Context, Result, anyhow};
use flate2::Compression;
use flate2::write::ZlibEncoder;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The font family name the charts use.
const FONT: &str = "sans-serif";

/// Series colours: seaborn's colour-blind-safe "deep" palette, then its
/// "pastel" one, so that up to 20 series (a report comparing many students
/// or seeds) never share a colour.
const COLORS: [RGBColor; 20] = [
    RGBColor(76, 114, 176),
    RGBColor(221, 132, 82),
    RGBColor(85, 168, 104),
    RGBColor(196, 78, 82),
    RGBColor(129, 114, 179),
    RGBColor(147, 120, 96),
    RGBColor(218, 139, 195),
    RGBColor(140, 140, 140),
    RGBColor(204, 185, 116),
    RGBColor(100, 181, 205),
    RGBColor(161, 201, 244),
    RGBColor(255, 180, 130),
    RGBColor(141, 229, 161),
    RGBColor(255, 159, 155),
    RGBColor(208, 187, 255),
    RGBColor(222, 187, 155),
    RGBColor(250, 176, 228),
    RGBColor(207, 207, 207),
    RGBColor(255, 254, 163),
    RGBColor(185, 242, 240),
];

/// The colour of series `i`.
fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded fonts are valid TrueType files; a failure here is a
        // packaging bug, and text would fall back to nothing drawn.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

fn plot_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the chart failed: {e:?}")
}

/// A chart over `f64` x and y axes drawn into a bitmap.
type Chart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Draws the series labels at `position` in `chart`.
fn draw_legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>, position: SeriesLabelPosition) -> Result<()> {
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .position(position)
        .draw()
        .map_err(plot_error)
}

/// The place whose legend box (`size`: its width and height as shares of
/// the plotting area) hides the least of the lines through `series`, each
/// in plotting-area shares (0 left/bottom, 1 right/top): a corner, or the
/// middle of the right or left side. Every segment is sampled at 16
/// points; ties go to the upper right, then upper left, lower right, lower
/// left, middle right, middle left.
fn legend_position(series: &[Vec<(f64, f64)>], size: (f64, f64)) -> SeriesLabelPosition {
    let (w, h) = size;
    let samples: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|line| {
            line.windows(2)
                .flat_map(|pair| (0..16).map(move |i| {
                    let t = i as f64 / 16.0;
                    (pair[0].0 + t * (pair[1].0 - pair[0].0), pair[0].1 + t * (pair[1].1 - pair[0].1))
                }))
                .chain(line.last().copied())
        })
        .collect();
    let places = [
        (SeriesLabelPosition::UpperRight, (1.0 - w, 1.0), (1.0 - h, 1.0)),
        (SeriesLabelPosition::UpperLeft, (0.0, w), (1.0 - h, 1.0)),
        (SeriesLabelPosition::LowerRight, (1.0 - w, 1.0), (0.0, h)),
        (SeriesLabelPosition::LowerLeft, (0.0, w), (0.0, h)),
        (SeriesLabelPosition::MiddleRight, (1.0 - w, 1.0), (0.5 - h / 2.0, 0.5 + h / 2.0)),
        (SeriesLabelPosition::MiddleLeft, (0.0, w), (0.5 - h / 2.0, 0.5 + h / 2.0)),
    ];
    let hidden = |(x0, x1): (f64, f64), (y0, y1): (f64, f64)| {
        samples.iter().filter(|(x, y)| (x0..=x1).contains(x) && (y0..=y1).contains(y)).count()
    };
    places.into_iter().min_by_key(|(_, x, y)| hidden(*x, *y)).map(|(place, _, _)| place).unwrap_or(SeriesLabelPosition::UpperRight)
}

/// One named row of bar heights, one per group.
#[derive(Debug, Clone)]
pub struct BarSeries {
    /// Legend label.
    pub name: String,
    /// One height per group (NaN draws no bar).
    pub values: Vec<f64>,
    /// Per group, a (low, high) range drawn as a whisker over the bar (the
    /// spread of a system's seeds); empty or `None` draws none.
    pub spread: Vec<Option<(f64, f64)>>,
}

/// Draws a grouped bar chart: one group per entry of `groups`, one bar per
/// series in each, a whisker over a bar where its series has a spread, the
/// value printed above each bar (and whisker) where the bars are wide
/// enough for it, and the legend to the right of the bars (never over
/// them); writes a PNG to `path`.
pub fn bar_chart(path: &Path, title: &str, groups: &[String], series: &[BarSeries], (w, h): (u32, u32)) -> Result<()> {
    register_fonts();
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let legend_font = (FONT, 14).into_font().color(&BLACK);
        let mut name_width = 0;
        for s in series {
            name_width = name_width.max(root.estimate_text_size(&s.name, &legend_font).map_err(plot_error)?.0);
        }
        // Swatch, gap, longest name and margins.
        let legend_width = (name_width + 44).min(w / 2);
        let (plot, legend) = root.split_horizontally(w - legend_width);
        let highs = series.iter().flat_map(|s| s.spread.iter().flatten().map(|r| r.1));
        let top = series.iter().flat_map(|s| s.values.iter().copied()).chain(highs).filter(|v| v.is_finite()).fold(0.0, f64::max);
        let y_max = if top <= 1.0 { 1.1 } else { top * 1.15 };
        let mut chart = ChartBuilder::on(&plot)
            .caption(title, (FONT, 22).into_font().style(FontStyle::Bold))
            .margin(16)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..groups.len() as f64, 0.0..y_max)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_label_style((FONT, 14))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(plot_error)?;
        let n = series.len().max(1) as f64;
        let width = 0.84 / n;
        // A value label ("0.56", about 24 px) goes above its bar only when
        // the bars are wider than it, so labels never run into each other.
        let bar_pixels = chart.backend_coord(&(width, 0.0)).0 - chart.backend_coord(&(0.0, 0.0)).0;
        let labelled = bar_pixels >= 26;
        for (i, s) in series.iter().enumerate() {
            let c = color(i);
            let bars = s.values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(move |(g, &v)| {
                let x0 = g as f64 + 0.08 + i as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width * 0.92, v)], c.filled())
            });
            chart.draw_series(bars).map_err(plot_error)?;
            // The middle of this series' bar in group `g`.
            let center = move |g: usize| g as f64 + 0.08 + (i as f64 + 0.46) * width;
            // Whiskers: a vertical line from low to high with short caps.
            let whiskers = s.spread.iter().enumerate().filter_map(|(g, r)| Some((g, (*r)?))).flat_map(move |(g, (lo, hi))| {
                let x = center(g);
                let cap = width * 0.2;
                [((x, lo), (x, hi)), ((x - cap, lo), (x + cap, lo)), ((x - cap, hi), (x + cap, hi))]
                    .map(|(a, b)| PathElement::new(vec![a, b], BLACK.stroke_width(1)))
            });
            chart.draw_series(whiskers).map_err(plot_error)?;
            if labelled {
                let labels = s.values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(move |(g, &v)| {
                    let x = center(g);
                    let above = s.spread.get(g).copied().flatten().map_or(v, |r| r.1.max(v));
                    Text::new(
                        format!("{v:.2}"),
                        (x, above),
                        (FONT, 11).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Bottom)),
                    )
                });
                chart.draw_series(labels).map_err(plot_error)?;
            }
        }
        for (g, name) in groups.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(g as f64 + 0.5, 0.0));
            plot.draw(&Text::new(
                name.as_str(),
                (x, y + 8),
                (FONT, 15).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(plot_error)?;
        }
        // The legend: one swatch and name per series, from the top of the
        // plotting area down.
        let (_, top_y) = chart.backend_coord(&(0.0, y_max));
        for (i, s) in series.iter().enumerate() {
            let y = top_y + 10 + 20 * i as i32;
            legend.draw(&Rectangle::new([(8, y - 6), (22, y + 6)], color(i).filled())).map_err(plot_error)?;
            legend
                .draw(&Text::new(s.name.as_str(), (30, y), legend_font.pos(Pos::new(HPos::Left, VPos::Center))))
                .map_err(plot_error)?;
        }
        root.present().map_err(plot_error)?;
    }
    write_png(path, &buf, w, h)
}

/// One named line of (x, y) points.
#[derive(Debug, Clone)]
pub struct LineSeries {
    /// Legend label.
    pub name: String,
    /// Points in x order.
    pub points: Vec<(f64, f64)>,
}

/// One chart of a [`line_charts`] figure.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Caption.
    pub title: String,
    /// X axis description.
    pub x_label: String,
    /// Y axis description.
    pub y_label: String,
    /// The lines; series `i` gets the same colour in every panel.
    pub series: Vec<LineSeries>,
}

/// Draws `panels` side by side as line charts (points marked) and writes a
/// PNG to `path`.
pub fn line_charts(path: &Path, panels: &[Panel], (w, h): (u32, u32)) -> Result<()> {
    register_fonts();
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (panel, area) in panels.iter().zip(&areas) {
            let points = || panel.series.iter().flat_map(|s| s.points.iter().copied()).filter(|(x, y)| x.is_finite() && y.is_finite());
            let (x_min, x_max) = points().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (x, _)| (a.min(x), b.max(x)));
            let (y_min, y_max) = points().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (_, y)| (a.min(y), b.max(y)));
            let (x_min, x_max) = if x_min.is_finite() { (x_min, x_max.max(x_min + 1.0)) } else { (0.0, 1.0) };
            let (y_min, y_max) = if y_min.is_finite() { (y_min, y_max) } else { (0.0, 1.0) };
            // A flat line gets a band around it rather than a range of rounding noise.
            let pad = ((y_max - y_min) * 0.08).max(0.05 * y_max.abs().max(y_min.abs()).max(0.2));
            let integral_x = points().all(|(x, _)| x.fract() == 0.0);
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, (FONT, 20).into_font().style(FontStyle::Bold))
                .margin(14)
                .x_label_area_size(44)
                .y_label_area_size(60)
                .build_cartesian_2d(x_min..x_max, (y_min - pad)..(y_max + pad))
                .map_err(plot_error)?;
            let x_format = |x: &f64| if integral_x { format!("{x:.0}") } else { format!("{x:.1}") };
            chart
                .configure_mesh()
                .x_labels(if integral_x { ((x_max - x_min) as usize + 1).min(10) } else { 10 })
                .x_label_formatter(&x_format)
                .x_desc(panel.x_label.as_str())
                .y_desc(panel.y_label.as_str())
                .label_style((FONT, 14))
                .axis_desc_style((FONT, 15))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(plot_error)?;
            // Each line's points as shares of the plotting area, for the legend.
            let (x_span, y_span) = (x_max - x_min, y_max - y_min + 2.0 * pad);
            let mut shares: Vec<Vec<(f64, f64)>> = Vec::with_capacity(panel.series.len());
            for (i, s) in panel.series.iter().enumerate() {
                let c = color(i);
                let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
                shares.push(pts.iter().map(|(x, y)| ((x - x_min) / x_span, (y - (y_min - pad)) / y_span)).collect());
                chart
                    .draw_series(plotters::series::LineSeries::new(pts.clone(), c.stroke_width(2)))
                    .map_err(plot_error)?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(3)));
                chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, c.filled()))).map_err(plot_error)?;
            }
            if !panel.series.is_empty() {
                // The legend's size in pixels as plotters draws it (14 px
                // text, about 0.6 em a character, a 16 px sample line and
                // margins), as shares of the plotting area.
                let (area_w, area_h) = chart.plotting_area().dim_in_pixel();
                let longest = panel.series.iter().map(|s| s.name.chars().count()).max().unwrap_or(0);
                let size = (
                    ((longest as f64 * 8.4 + 50.0) / area_w.max(1) as f64).min(1.0),
                    ((panel.series.len() as f64 * 20.0 + 20.0) / area_h.max(1) as f64).min(1.0),
                );
                draw_legend(&mut chart, legend_position(&shares, size))?;
            }
        }
        root.present().map_err(plot_error)?;
    }
    write_png(path, &buf, w, h)
}

/// Writes 8-bit RGB pixels, row-major, as a PNG file (each row with filter
/// type 0, the whole image in one zlib stream).
pub fn write_png(path: &Path, rgb: &[u8], w: u32, h: u32) -> Result<()> {
    let row = w as usize * 3;
    if rgb.len() != row * h as usize {
        return Err(anyhow!("{} bytes are not a {w}x{h} RGB image", rgb.len()));
    }
    let mut deflate = ZlibEncoder::new(Vec::new(), Compression::default());
    for line in rgb.chunks(row) {
        deflate.write_all(&[0])?;
        deflate.write_all(line)?;
    }
    let data = deflate.finish()?;
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&w.to_be_bytes());
    header.extend_from_slice(&h.to_be_bytes());
    // Bit depth 8, colour type 2 (RGB), deflate, adaptive filtering, no interlace.
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, body) in [(b"IHDR", header.as_slice()), (b"IDAT", data.as_slice()), (b"IEND", &[][..])] {
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).with_context(|| format!("{} is not a file path", path.display()))?;
    uae_data::atomic::write_atomically(dir, name, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes a PNG written by [`write_png`] (checking chunk CRCs and the
    /// header) into its width, height and RGB pixels.
    fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let (mut at, mut idat, mut kinds, mut size) = (8, Vec::new(), Vec::new(), (0, 0));
        while at < bytes.len() {
            let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            let kind = &bytes[at + 4..at + 8];
            let body = &bytes[at + 8..at + 8 + len];
            let crc = u32::from_be_bytes(bytes[at + 8 + len..at + 12 + len].try_into().unwrap());
            assert_eq!(crc, crc32fast::hash(&bytes[at + 4..at + 8 + len]));
            if kind == b"IHDR" {
                size = (u32::from_be_bytes(body[..4].try_into().unwrap()), u32::from_be_bytes(body[4..8].try_into().unwrap()));
                assert_eq!(&body[8..], &[8, 2, 0, 0, 0]);
            }
            if kind == b"IDAT" {
                idat.extend_from_slice(body);
            }
            kinds.push(String::from_utf8(kind.to_vec()).unwrap());
            at += 12 + len;
        }
        assert_eq!(kinds, ["IHDR", "IDAT", "IEND"]);
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(idat.as_slice()), &mut raw).unwrap();
        let rows: Vec<&[u8]> = raw.chunks(1 + 3 * size.0 as usize).collect();
        assert_eq!(rows.len(), size.1 as usize);
        assert!(rows.iter().all(|r| r[0] == 0));
        (size.0, size.1, rows.iter().flat_map(|r| r[1..].to_vec()).collect())
    }

    #[test]
    fn png_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        let rgb: Vec<u8> = (0..3 * 2 * 3).map(|i| (i * 13) as u8).collect();
        write_png(&path, &rgb, 3, 2).unwrap();
        assert_eq!(decode(&path), (3, 2, rgb));
    }

    fn has_color(pixels: &[u8], c: RGBColor) -> bool {
        pixels.chunks(3).any(|p| p == [c.0, c.1, c.2])
    }

    /// Each series' colour appears (bars, legend), and so does dark text.
    #[test]
    fn bar_chart_draws_every_series() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bars.png");
        let series = vec![
            BarSeries { name: "a".into(), values: vec![0.5, 0.7], spread: Vec::new() },
            BarSeries { name: "b".into(), values: vec![0.6, f64::NAN], spread: Vec::new() },
        ];
        bar_chart(&path, "t", &["R@1".into(), "MAP".into()], &series, (400, 300)).unwrap();
        let (w, h, pixels) = decode(&path);
        assert_eq!((w, h), (400, 300));
        assert!(has_color(&pixels, color(0)) && has_color(&pixels, color(1)) && !has_color(&pixels, color(2)));
        assert!(pixels.chunks(3).filter(|p| p.iter().all(|&v| v < 60)).count() > 200, "no text drawn");
    }

    /// A spread draws a black whisker above a bar that reaches no higher.
    #[test]
    fn a_spread_draws_a_whisker() {
        let dir = tempfile::tempdir().unwrap();
        let dark = |spread: Vec<Option<(f64, f64)>>| {
            let path = dir.path().join("bars.png");
            let series = vec![BarSeries { name: "a".into(), values: vec![0.3], spread }];
            bar_chart(&path, "t", &["R@1".into()], &series, (400, 300)).unwrap();
            let (_, _, pixels) = decode(&path);
            pixels.chunks(3).filter(|p| p.iter().all(|&v| v < 60)).count()
        };
        let plain = dark(Vec::new());
        let whisker = dark(vec![Some((0.2, 0.9))]);
        // The line from 0.2 to 0.9 spans well over 100 of the plot's pixels.
        assert!(whisker > plain + 100, "{plain} dark pixels without, {whisker} with the spread");
    }

    /// Twelve series (a report of many students) get twelve colours, and
    /// the legend stays right of the bars: no series colour in the plot's
    /// columns between the last bar and the legend's swatches.
    #[test]
    fn many_series_keep_their_own_colours_and_the_legend_clear_of_the_bars() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bars.png");
        let series: Vec<BarSeries> =
            (0..12).map(|i| BarSeries { name: format!("student-{i}"), values: vec![0.9, 0.95, 1.0], spread: Vec::new() }).collect();
        let (w, h) = (1000, 400);
        bar_chart(&path, "t", &["R@1".into(), "R@5".into(), "MAP".into()], &series, (w, h)).unwrap();
        let (_, _, pixels) = decode(&path);
        let colours: Vec<RGBColor> = (0..12).map(color).collect();
        assert!(colours.iter().enumerate().all(|(i, c)| colours[..i].iter().all(|d| d != c)), "a colour repeats");
        assert!(colours.iter().all(|&c| has_color(&pixels, c)));
        // The columns holding a (non-grey: text's anti-aliasing is grey)
        // series colour: bars on the left, swatches on the right, and a gap
        // between them.
        let vivid: Vec<RGBColor> = colours.into_iter().filter(|c| !(c.0 == c.1 && c.1 == c.2)).collect();
        let coloured: Vec<bool> = (0..w as usize)
            .map(|x| (0..h as usize).any(|y| vivid.iter().any(|c| pixels[(y * w as usize + x) * 3..][..3] == [c.0, c.1, c.2])))
            .collect();
        let last_swatch = coloured.iter().rposition(|&c| c).unwrap();
        let gap_before_legend = coloured[..last_swatch].iter().rev().skip_while(|&&c| c).take_while(|&&c| !c).count();
        assert!(gap_before_legend >= 16, "the legend touches the bars (gap of {gap_before_legend} px)");
    }

    #[test]
    fn line_charts_draw_every_series() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines.png");
        let line = |name: &str, k: f64| LineSeries { name: name.into(), points: (0..5).map(|i| (i as f64, k / (1.0 + i as f64))).collect() };
        let panel = Panel { title: "loss".into(), x_label: "step".into(), y_label: "loss".into(), series: vec![line("a", 1.0), line("b", 2.0)] };
        line_charts(&path, &[panel.clone(), Panel { series: vec![], ..panel }], (600, 300)).unwrap();
        let (_, _, pixels) = decode(&path);
        assert!(has_color(&pixels, color(0)) && has_color(&pixels, color(1)));
    }

    /// The legend goes where it hides no line: a rising curve leaves the
    /// lower right free, a falling one the upper right.
    #[test]
    fn legend_avoids_the_lines() {
        let rising = vec![vec![(0.0, 0.1), (0.3, 0.8), (1.0, 0.95)]];
        assert_eq!(legend_position(&rising, (0.4, 0.2)), SeriesLabelPosition::LowerRight);
        let falling = vec![vec![(0.0, 0.9), (0.2, 0.3), (1.0, 0.1)]];
        assert_eq!(legend_position(&falling, (0.4, 0.2)), SeriesLabelPosition::UpperRight);
        // Every series counts: one line along the top, one along the
        // bottom of the left half.
        let both = vec![vec![(0.0, 0.95), (1.0, 0.95)], vec![(0.0, 0.05), (0.5, 0.05)]];
        assert_eq!(legend_position(&both, (0.3, 0.2)), SeriesLabelPosition::LowerRight);
        // A lone point counts.
        let single = vec![vec![(0.9, 0.9)]];
        assert_eq!(legend_position(&single, (0.3, 0.3)), SeriesLabelPosition::UpperLeft);
        // Lines along the top and the bottom leave the middle of a side.
        let apart = vec![vec![(0.0, 0.95), (1.0, 0.95)], vec![(0.0, 0.05), (1.0, 0.05)]];
        assert_eq!(legend_position(&apart, (0.3, 0.2)), SeriesLabelPosition::MiddleRight);
    }
}
