//! The throughput-against-message-size figure, drawn from the run's own
//! numbers. Text uses an embedded DejaVu Sans, so no system font library is
//! needed.
use std::path::Path;

use anyhow::{anyhow, Context as _};
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

/// One line of the figure: (message size in bytes, MB/s) points.
pub struct Series<'a> {
    pub label: &'a str,
    pub color: RGBColor,
    pub triangles: bool,
    pub points: Vec<(usize, f64)>,
}

const FONT: &str = "sans-serif";

pub fn draw(path: &Path, title: &str, series: &[Series]) -> anyhow::Result<()> {
    register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| anyhow!("the embedded font did not load"))?;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    draw_chart(path, title, series).map_err(|error| anyhow!("drawing {}: {error}", path.display()))
}

fn draw_chart(
    path: &Path,
    title: &str,
    series: &[Series],
) -> Result<(), Box<dyn std::error::Error>> {
    let values = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (low, high) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let low = 10f64.powf(low.max(1e-3).log10().floor());
    let high = 10f64.powf(high.max(low * 10.0).log10().ceil());
    let sizes = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (min_size, max_size) = sizes.fold((usize::MAX, 0), |(lo, hi), s| (lo.min(s), hi.max(s)));
    let x_range = (min_size as f64).log2()..(max_size as f64).log2();

    let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 22))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range.clone(), (low..high).log_scale())?;
    let ticks = (x_range.end - x_range.start).round() as usize + 1;
    chart
        .configure_mesh()
        .x_labels(ticks)
        .x_label_formatter(&|x| size_label(2f64.powf(*x).round() as usize))
        .y_label_formatter(&|y| format!("{y}"))
        .x_desc("message size")
        .y_desc("MB/s (payload)")
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .draw()?;
    for s in series {
        let points: Vec<(f64, f64)> = s
            .points
            .iter()
            .map(|&(size, mbps)| ((size as f64).log2(), mbps))
            .collect();
        let color = s.color;
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(s.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
            });
        if s.triangles {
            chart.draw_series(
                points
                    .iter()
                    .map(|&p| TriangleMarker::new(p, 6, color.filled())),
            )?;
        } else {
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        }
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}

/// 16 B, 1 KiB, 16 KiB.
pub fn size_label(size: usize) -> String {
    if size >= 1024 && size % 1024 == 0 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}
