//! `accuracy_vs_cost.svg`: the official and frontier curves, the static baselines as points
//! and the chosen budget points marked (plotters, SVG backend only).

use super::PolicyError;
use plotters::prelude::*;
use std::path::Path;

/// What to draw; all costs in GFLOPs per image, accuracies in [0, 1].
#[derive(Debug, Clone, Default)]
pub struct PlotData {
    /// Title (say which images the curves were measured on).
    pub title: String,
    /// The official procedure's points, sorted by cost.
    pub official: Vec<(f64, f64)>,
    /// The frontier's points, sorted by cost.
    pub frontier: Vec<(f64, f64)>,
    /// Static baselines: name, cost, accuracy.
    pub baselines: Vec<(String, f64, f64)>,
    /// Marked points (e.g. the chosen point at some budgets): label, cost, accuracy.
    pub chosen: Vec<(String, f64, f64)>,
}

/// Draws `data` to `path` as SVG.
pub fn draw(path: &Path, data: &PlotData) -> Result<(), PolicyError> {
    let err = |e: &dyn std::fmt::Display| PolicyError::Plot {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let all = data
        .official
        .iter()
        .chain(&data.frontier)
        .copied()
        .chain(data.baselines.iter().map(|b| (b.1, b.2)))
        .chain(data.chosen.iter().map(|b| (b.1, b.2)))
        .filter(|p| p.0.is_finite() && p.1.is_finite());
    let (mut x1, mut y0, mut y1) = (0f64, 1f64, 0f64);
    for (x, y) in all {
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if y0 > y1 {
        return Err(err(&"nothing to draw"));
    }
    let pad = ((y1 - y0) * 0.08).max(0.005);
    let (y0, y1) = ((y0 - pad).max(0.0), (y1 + pad).min(1.0));
    let x1 = x1 * 1.08 + 1e-9;

    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&data.title, ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x1, 100.0 * y0..100.0 * y1)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("expected GFLOPs per image")
        .y_desc("top-1 accuracy (%)")
        .x_label_formatter(&|x| format!("{x:.4}"))
        .draw()
        .map_err(|e| err(&e))?;
    let pct = |v: &[(f64, f64)]| v.iter().map(|&(x, y)| (x, 100.0 * y)).collect::<Vec<_>>();
    let grey = RGBColor(120, 120, 120);
    for (pts, color, name) in [
        (
            pct(&data.official),
            grey,
            "official (geometric q^k, p = 1..59)",
        ),
        (pct(&data.frontier), BLUE, "frontier (ours)"),
    ] {
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 2, color.filled())))
            .map_err(|e| err(&e))?;
    }
    let red = RGBColor(200, 30, 30);
    chart
        .draw_series(data.baselines.iter().map(|(n, x, y)| {
            EmptyElement::at((*x, 100.0 * y))
                + TriangleMarker::new((0, 0), 6, BLACK.filled())
                + Text::new(n.clone(), (8, -4), ("sans-serif", 12))
        }))
        .map_err(|e| err(&e))?
        .label("static baselines")
        .legend(|(x, y)| TriangleMarker::new((x + 10, y), 6, BLACK.filled()));
    chart
        .draw_series(data.chosen.iter().map(|(n, x, y)| {
            EmptyElement::at((*x, 100.0 * y))
                + Circle::new((0, 0), 6, red.stroke_width(2))
                + Text::new(n.clone(), (8, 6), ("sans-serif", 12))
        }))
        .map_err(|e| err(&e))?
        .label("chosen points")
        .legend(move |(x, y)| Circle::new((x + 10, y), 5, red.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
