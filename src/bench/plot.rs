//! `latency_vs_accuracy.svg`: measured mean milliseconds per image (batch 1) against the
//! accuracy the manifest records, for the cascade's operating points and the static models.

use plotters::prelude::*;
use std::path::Path;

/// What to draw: (label, ms per image, accuracy in [0, 1]).
#[derive(Debug, Clone, Default)]
pub struct LatencyPlot {
    /// Title (machine and backend).
    pub title: String,
    /// Cascade operating points, drawn as a line in cost order.
    pub cascade: Vec<(String, f64, f64)>,
    /// Static models, drawn as labelled points.
    pub statics: Vec<(String, f64, f64)>,
    /// The point matched against the largest static model, highlighted.
    pub matched: Option<(String, f64, f64)>,
}

/// Why the plot could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw {path}: {reason}")]
pub struct PlotError {
    /// Target file.
    pub path: String,
    /// Drawing error.
    pub reason: String,
}

/// Draws `data` to `path` (SVG).
pub fn draw(path: &Path, data: &LatencyPlot) -> Result<(), PlotError> {
    let err = |e: &dyn std::fmt::Display| PlotError {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let pts: Vec<(f64, f64)> = data
        .cascade
        .iter()
        .chain(&data.statics)
        .map(|p| (p.1, p.2))
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    if pts.is_empty() {
        return Err(err(&"nothing to draw"));
    }
    let x1 = pts.iter().map(|p| p.0).fold(0f64, f64::max) * 1.1 + 1e-6;
    let y0 = pts.iter().map(|p| p.1).fold(1f64, f64::min);
    let y1 = pts.iter().map(|p| p.1).fold(0f64, f64::max);
    let pad = ((y1 - y0) * 0.1).max(0.005);
    let (y0, y1) = (100.0 * (y0 - pad).max(0.0), 100.0 * (y1 + pad).min(1.0));

    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&data.title, ("sans-serif", 18))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x1, y0..y1)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("measured mean latency per image, batch 1 (ms)")
        .y_desc("top-1 accuracy (%)")
        .x_label_formatter(&|x| format!("{x:.2}"))
        .draw()
        .map_err(|e| err(&e))?;
    let mut cascade: Vec<(f64, f64)> = data.cascade.iter().map(|p| (p.1, 100.0 * p.2)).collect();
    cascade.sort_by(|a, b| a.0.total_cmp(&b.0));
    chart
        .draw_series(LineSeries::new(cascade.clone(), BLUE.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label("cascade operating points")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(cascade.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))
        .map_err(|e| err(&e))?;
    let red = RGBColor(200, 30, 30);
    chart
        .draw_series(data.statics.iter().map(|(name, x, y)| {
            EmptyElement::at((*x, 100.0 * y))
                + TriangleMarker::new((0, 0), 7, red.filled())
                + Text::new(name.clone(), (8, -4), ("sans-serif", 14))
        }))
        .map_err(|e| err(&e))?
        .label("static models")
        .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 6, red.filled()));
    if let Some((name, x, y)) = &data.matched {
        let green = RGBColor(20, 150, 60);
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((*x, 100.0 * y))
                    + Circle::new((0, 0), 8, green.stroke_width(3))
                    + Text::new(name.clone(), (10, 8), ("sans-serif", 14)),
            ))
            .map_err(|e| err(&e))?
            .label("point matching the largest static model")
            .legend(move |(x, y)| Circle::new((x + 10, y), 6, green.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
