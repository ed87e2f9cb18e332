//! Charts as inline SVG: no script, no font or library fetched at view time, sharp in print.
//! Every mark carries its number in `data-*` attributes (and a tooltip), so what is drawn can
//! be checked against the query it came from.

use std::fmt::Write;

/// Series colours (Tableau 10: told apart in colour and in greyscale print).
const PALETTE: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f",
];

/// A chart's size in SVG units (it scales to the page's width).
#[derive(Clone, Copy)]
pub struct Size {
    pub width: f64,
    pub height: f64,
}

/// A chart as wide as the page.
pub const WIDE: Size = Size {
    width: 900.0,
    height: 300.0,
};

/// One of two charts side by side.
pub const HALF: Size = Size {
    width: 450.0,
    height: 230.0,
};

const LEFT: f64 = 70.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 60.0;

/// One point of a line.
pub struct Point {
    pub value: f64,
    /// `data-*` attributes naming it (already escaped).
    pub attrs: String,
    /// Drawn hollow: a period still open, whose number will change.
    pub hollow: bool,
}

/// A line: its name and a point (or a gap) at each x label.
pub struct Series {
    pub name: String,
    pub points: Vec<Option<Point>>,
}

/// One bar.
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub attrs: String,
}

/// Text for XML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A number as people read it: thousands apart, at most `decimals` decimals.
pub fn number(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let frac = frac.trim_end_matches('0');
    match frac {
        "" => format!("{sign}{grouped}"),
        f => format!("{sign}{grouped}.{f}"),
    }
}

/// Round steps for an axis from 0 to `max`: 1, 2, 2.5 or 5 times a power of ten.
fn ticks(max: f64) -> (f64, Vec<f64>) {
    if max <= 0.0 {
        return (1.0, vec![0.0, 1.0]);
    }
    let raw = max / 5.0;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power);
    let top = (max / step).ceil() * step;
    let count = (top / step).round() as usize;
    (top, (0..=count).map(|i| i as f64 * step).collect())
}

fn y_axis(svg: &mut String, size: Size, top: f64, ticks: &[f64], label: &str) {
    let plot = size.height - TOP - BOTTOM;
    for t in ticks {
        let y = TOP + plot - t / top * plot;
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e3e3e3"/><text x="{}" y="{:.1}" text-anchor="end" class="tick">{}</text>"##,
            size.width - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            number(*t, 2)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle" class="axis">{}</text>"#,
        TOP + plot / 2.0,
        TOP + plot / 2.0,
        escape(label)
    );
}

fn open(id: &str, title: &str, size: Size) -> String {
    format!(
        r#"<svg id="{}" class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
        escape(id),
        size.width,
        size.height,
        escape(title)
    )
}

fn legend(svg: &mut String, size: Size, names: &[&str]) {
    let mut x = LEFT;
    for (i, name) in names.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{}" width="12" height="12" fill="{colour}"/><text x="{:.1}" y="{}" class="legend">{}</text>"#,
            size.height - 18.0,
            x + 16.0,
            size.height - 8.0,
            escape(name)
        );
        x += 24.0 + 7.5 * name.chars().count() as f64;
    }
}

/// A line chart of `series` over the x labels `x`, y from 0.
pub fn line_chart(
    id: &str,
    title: &str,
    y_label: &str,
    size: Size,
    x: &[String],
    series: &[Series],
) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().flatten())
        .map(|p| p.value)
        .fold(0.0, f64::max);
    let (top, marks) = ticks(max);
    let plot_w = size.width - LEFT - RIGHT;
    let plot_h = size.height - TOP - BOTTOM;
    let step = if x.len() > 1 {
        plot_w / (x.len() - 1) as f64
    } else {
        0.0
    };
    let at = |i: usize, v: f64| {
        (
            LEFT + if x.len() > 1 {
                i as f64 * step
            } else {
                plot_w / 2.0
            },
            TOP + plot_h - v / top * plot_h,
        )
    };
    let mut svg = open(id, title, size);
    y_axis(&mut svg, size, top, &marks, y_label);
    // Every label when they fit, else every n-th counted back from the last, the newest.
    let fit = (plot_w / 60.0).max(1.0);
    let every = (x.len() as f64 / fit).ceil().max(1.0) as usize;
    let last = x.len().saturating_sub(1);
    for (i, label) in x.iter().enumerate() {
        if (last - i).is_multiple_of(every) {
            let (px, _) = at(i, 0.0);
            let _ = write!(
                svg,
                r#"<text x="{px:.1}" y="{:.1}" text-anchor="middle" class="tick">{}</text>"#,
                TOP + plot_h + 16.0,
                escape(label)
            );
        }
    }
    for (n, s) in series.iter().enumerate() {
        let colour = PALETTE[n % PALETTE.len()];
        // A gap (a period without the product) breaks the line.
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for (i, p) in s.points.iter().enumerate() {
            match p {
                Some(p) => runs
                    .last_mut()
                    .unwrap_or(&mut Vec::new())
                    .push(at(i, p.value)),
                None => runs.push(Vec::new()),
            }
        }
        for run in runs.iter().filter(|r| r.len() > 1) {
            let path: Vec<String> = run.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
            let _ = write!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
                path.join(" ")
            );
        }
        for (i, p) in s.points.iter().enumerate() {
            let Some(p) = p else { continue };
            let (cx, cy) = at(i, p.value);
            let fill = if p.hollow { "#fff" } else { colour };
            let _ = write!(
                svg,
                r#"<circle class="point" cx="{cx:.1}" cy="{cy:.1}" r="3.5" fill="{fill}" stroke="{colour}" stroke-width="1.5" data-series="{}" {} data-value="{}"><title>{}, {}: {}{}</title></circle>"#,
                escape(&s.name),
                p.attrs,
                p.value,
                escape(&s.name),
                escape(&x[i]),
                number(p.value, 2),
                if p.hollow { " (period still open)" } else { "" }
            );
        }
    }
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    if names.len() > 1 {
        legend(&mut svg, size, &names);
    }
    svg.push_str("</svg>");
    svg
}

/// Bars in groups (one colour per bar label, the same in every group), y from 0.
pub fn bar_chart(id: &str, title: &str, y_label: &str, groups: &[(String, Vec<Bar>)]) -> String {
    let max = groups
        .iter()
        .flat_map(|(_, bars)| bars.iter().map(|b| b.value))
        .fold(0.0, f64::max);
    let size = WIDE;
    let (top, marks) = ticks(max);
    let plot_w = size.width - LEFT - RIGHT;
    let plot_h = size.height - TOP - BOTTOM;
    let mut labels: Vec<&str> = Vec::new();
    for (_, bars) in groups {
        for b in bars {
            if !labels.contains(&b.label.as_str()) {
                labels.push(&b.label);
            }
        }
    }
    let mut svg = open(id, title, size);
    y_axis(&mut svg, size, top, &marks, y_label);
    let group_w = plot_w / groups.len().max(1) as f64;
    let bar_w = (group_w * 0.7 / labels.len().max(1) as f64).min(80.0);
    for (g, (name, bars)) in groups.iter().enumerate() {
        let start = LEFT + g as f64 * group_w + (group_w - bar_w * bars.len() as f64) / 2.0;
        for (i, b) in bars.iter().enumerate() {
            let colour_at = labels.iter().position(|l| *l == b.label).unwrap_or(0);
            let h = b.value.max(0.0) / top * plot_h;
            let x = start + i as f64 * bar_w;
            let _ = write!(
                svg,
                r#"<rect class="bar" x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}" {} data-value="{}"><title>{}, {}: {}</title></rect><text x="{:.1}" y="{:.1}" text-anchor="middle" class="value">{}</text>"#,
                TOP + plot_h - h,
                bar_w - 4.0,
                PALETTE[colour_at % PALETTE.len()],
                b.attrs,
                b.value,
                escape(name),
                escape(&b.label),
                number(b.value, 3),
                x + (bar_w - 4.0) / 2.0,
                TOP + plot_h - h - 4.0,
                number(b.value, 2)
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="tick">{}</text>"#,
            LEFT + g as f64 * group_w + group_w / 2.0,
            TOP + plot_h + 16.0,
            escape(name)
        );
    }
    legend(&mut svg, size, &labels);
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers_above_the_largest_value() {
        assert_eq!(ticks(1139.0).0, 1250.0);
        assert_eq!(ticks(7.3).0, 8.0);
        assert_eq!(ticks(0.0).0, 1.0);
    }

    #[test]
    fn numbers_are_grouped_for_people() {
        assert_eq!(number(1234567.0, 0), "1,234,567");
        assert_eq!(number(-1234.5, 2), "-1,234.5");
        assert_eq!(number(0.071, 3), "0.071");
    }
}
