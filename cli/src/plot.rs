//! `zerosmq plot`: numeric payloads over a sliding time window, live in the terminal (ratatui) or
//! saved as a PNG (plotters' bitmap backend).
//!
//! A payload is a number when its UTF-8 text, trimmed, parses as a finite `f64` ("3", "-1.5e3").
//! On a typed topic a numeric field is plotted by name, `TOPIC.FIELD.FIELD` (`imu.accel.x`;
//! array elements by index). Anything else is skipped and counted per series.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::topic::POLL;
use crate::{cli_node_as, parse_seconds, require_topic, stop_flag, stopped, Cli, CliResult};

#[derive(Debug, clap::Args)]
pub struct PlotArgs {
    /// Topics with numeric payloads, or numeric fields of typed topics (`imu.accel.x`).
    #[arg(required = true)]
    topics: Vec<String>,
    /// Seconds of history shown (default: 10 live; the whole --duration for --png).
    #[arg(short, long, value_parser = parse_seconds)]
    window: Option<Duration>,
    /// Instead of plotting live, collect for --duration seconds and save a PNG.
    #[arg(long, requires = "duration")]
    png: Option<PathBuf>,
    /// How long to collect (with --png), or to plot live before exiting.
    #[arg(short, long, value_parser = parse_seconds)]
    duration: Option<Duration>,
    /// PNG size in pixels, WIDTHxHEIGHT.
    #[arg(long, default_value = "1000x600", value_parser = parse_size)]
    size: (u32, u32),
    /// Wait for topics the master does not know yet instead of failing.
    #[arg(long)]
    wait: bool,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("'{s}' is not a size like 1000x600");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (u32, u32) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
    if !(100..=10_000).contains(&w) || !(100..=10_000).contains(&h) {
        return Err(format!(
            "'{s}': width and height must be 100 to 10000 pixels"
        ));
    }
    Ok((w, h))
}

/// A payload's number, or None when it is not one.
pub fn numeric(payload: &[u8]) -> Option<f64> {
    std::str::from_utf8(payload)
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

/// `name` as a topic and a field path: the whole name when the master knows such a topic, else
/// the longest known topic before a `.` (topic names may hold dots themselves), else the whole
/// name (for `--wait`, and for the unknown-topic error).
fn split_field<'a>(node: &zerosmq::Node, name: &'a str) -> (&'a str, Vec<String>) {
    let known = |t: &str| node.topic_info(t).is_ok();
    if known(name) {
        return (name, Vec::new());
    }
    let mut cut = name.len();
    while let Some(dot) = name[..cut].rfind('.') {
        let topic = &name[..dot];
        if known(topic) {
            let path = name[dot + 1..].split('.').map(str::to_owned).collect();
            return (topic, path);
        }
        cut = dot;
    }
    (name, Vec::new())
}

/// One topic's points (seconds since the start, value) and how many payloads were not numbers.
struct Series {
    topic: String,
    points: VecDeque<(f64, f64)>,
    skipped: u64,
}

struct Sample {
    series: usize,
    at: Instant,
    value: Option<f64>,
}

struct Plotter {
    series: Vec<Series>,
    rx: mpsc::Receiver<Sample>,
    start: Instant,
    done: Arc<AtomicBool>,
    threads: Vec<JoinHandle<zerosmq::Result<()>>>,
}

impl Plotter {
    fn open(cli: &Cli, args: &PlotArgs) -> Result<Self, Box<dyn std::error::Error>> {
        let node = cli_node_as(cli, "plot")?;
        let (tx, rx) = mpsc::channel();
        let done = Arc::new(AtomicBool::new(false));
        let mut series = Vec::new();
        let mut threads = Vec::new();
        for (i, name) in args.topics.iter().enumerate() {
            let (topic, path) = split_field(&node, name);
            require_topic(&node, topic, args.wait)?;
            let mut sub = node.subscribe(topic)?;
            sub.wait_ready(cli.timeout)?;
            eprintln!("zerosmq: subscribed to '{topic}'");
            let typed = crate::topic::json_decoder(&node, topic)?;
            if typed.is_none() && !path.is_empty() {
                return Err(format!(
                    "'{name}': topic '{topic}' is not typed, so it has no field '{}'",
                    path.join(".")
                )
                .into());
            }
            series.push(Series {
                topic: name.clone(),
                points: VecDeque::new(),
                skipped: 0,
            });
            let (tx, done) = (tx.clone(), done.clone());
            threads.push(std::thread::spawn(move || {
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                while !done.load(Ordering::Relaxed) {
                    if let Some(msg) = sub.recv_timeout(POLL)? {
                        let value = match &typed {
                            Some(d) => d.decode(msg.payload()).ok().and_then(|v| {
                                zerosmq_recording::typed::number_at(&v, &path)
                                    .filter(|v| v.is_finite())
                            }),
                            None => numeric(msg.payload()),
                        };
                        let sample = Sample {
                            series: i,
                            at: Instant::now(),
                            value,
                        };
                        if tx.send(sample).is_err() {
                            break;
                        }
                    }
                }
                sub.stop()
            }));
        }
        Ok(Plotter {
            series,
            rx,
            start: Instant::now(),
            done,
            threads,
        })
    }

    /// Takes in what arrived, waiting up to `wait` for the first, and drops points older than
    /// `window` (none when it is `None`).
    fn take(&mut self, wait: Duration, window: Option<Duration>) {
        let mut first = self.rx.recv_timeout(wait).ok();
        while let Some(s) = first.take().or_else(|| self.rx.try_recv().ok()) {
            let series = &mut self.series[s.series];
            match s.value {
                Some(v) => series
                    .points
                    .push_back((s.at.duration_since(self.start).as_secs_f64(), v)),
                None => series.skipped += 1,
            }
        }
        let Some(window) = window else { return };
        let oldest = self.start.elapsed().as_secs_f64() - window.as_secs_f64();
        for s in &mut self.series {
            while s.points.front().is_some_and(|p| p.0 < oldest) {
                s.points.pop_front();
            }
        }
    }

    fn close(self) -> Vec<Series> {
        self.done.store(true, Ordering::Relaxed);
        for t in self.threads {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("zerosmq: a receiver failed: {e}"),
                Err(_) => eprintln!("zerosmq: a receiver thread panicked"),
            }
        }
        self.series
    }
}

fn report(series: &[Series]) {
    let points: usize = series.iter().map(|s| s.points.len()).sum();
    let skipped: u64 = series.iter().map(|s| s.skipped).sum();
    let detail: Vec<String> = series
        .iter()
        .filter(|s| s.skipped > 0)
        .map(|s| format!("{}: {}", s.topic, s.skipped))
        .collect();
    eprint!("zerosmq: {points} point(s) plotted; {skipped} non-numeric payload(s) skipped");
    if detail.is_empty() {
        eprintln!();
    } else {
        eprintln!(" ({})", detail.join(", "));
    }
}

pub fn run(cli: &Cli, args: &PlotArgs) -> CliResult {
    let stop = stop_flag()?;
    match (&args.png, args.duration) {
        (Some(path), Some(duration)) => {
            let mut plotter = Plotter::open(cli, args)?;
            let end = plotter.start + duration;
            while !stopped(&stop) && Instant::now() < end {
                let left = end.saturating_duration_since(Instant::now());
                plotter.take(left.min(POLL), args.window);
            }
            let now = plotter.start.elapsed().as_secs_f64();
            let window = args.window.map_or(now, |w| w.as_secs_f64());
            let series = plotter.close();
            write_png(path, &series, args.size, (now - window, now))?;
            eprintln!("zerosmq: wrote {}", path.display());
            report(&series);
            Ok(())
        }
        _ => live(cli, args, &stop),
    }
}

/// Looks for a TrueType font for the PNG's labels: `ZEROSMQ_PLOT_FONT`, then common system
/// paths. Plotters' own font lookup (font-kit) needs fontconfig at build time; this does not.
fn load_font() -> Option<&'static [u8]> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("ZEROSMQ_PLOT_FONT")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    for p in [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
        "/System/Library/Fonts/Supplemental/Arial.ttf",
        "/Library/Fonts/Arial.ttf",
    ] {
        candidates.push(PathBuf::from(p));
    }
    candidates.into_iter().find_map(|p| {
        let bytes = std::fs::read(p).ok()?;
        // Leaked once per run: plotters keeps registered fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, bytes)
            .ok()
            .map(|()| bytes)
    })
}

/// Line colours, one a topic, cycling.
const COLOURS: [(u8, u8, u8); 6] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
];

fn y_range(series: &[Series]) -> (f64, f64) {
    let values = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (-1.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05)
        .max(0.5 * lo.abs().max(1.0) * 1e-3)
        .max(1e-9);
    (lo - pad, hi + pad)
}

fn write_png(
    path: &Path,
    series: &[Series],
    (width, height): (u32, u32),
    (x0, x1): (f64, f64),
) -> CliResult {
    use plotters::prelude::*;
    let labels = load_font().is_some();
    if !labels {
        eprintln!(
            "zerosmq: no TrueType font found (set ZEROSMQ_PLOT_FONT=/path/to/font.ttf); \
             the picture has no labels"
        );
    }
    let (y0, y1) = y_range(series);
    let err = |e: &dyn std::fmt::Display| format!("cannot draw {}: {e}", path.display());
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(15);
    if labels {
        let topics: Vec<&str> = series.iter().map(|s| s.topic.as_str()).collect();
        builder
            .caption(topics.join(", "), ("sans-serif", 22))
            .x_label_area_size(40)
            .y_label_area_size(60);
    }
    let mut chart = builder
        .build_cartesian_2d(x0.max(0.0)..x1.max(x0.max(0.0) + 1e-3), y0..y1)
        .map_err(|e| err(&e))?;
    let mut mesh = chart.configure_mesh();
    if labels {
        mesh.x_desc("seconds");
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw().map_err(|e| err(&e))?;
    for (i, s) in series.iter().enumerate() {
        let (r, g, b) = COLOURS[i % COLOURS.len()];
        let colour = RGBColor(r, g, b);
        let drawn = chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(|e| err(&e))?;
        if labels {
            drawn
                .label(s.topic.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour));
        }
    }
    if labels {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

fn live(cli: &Cli, args: &PlotArgs, stop: &AtomicBool) -> CliResult {
    use std::io::IsTerminal as _;
    if !std::io::stdout().is_terminal() {
        return Err(
            "the live plot needs a terminal; to save a picture use --png FILE --duration SECONDS"
                .into(),
        );
    }
    let window = args.window.unwrap_or(Duration::from_secs(10));
    let mut plotter = Plotter::open(cli, args)?;
    let end = args.duration.map(|d| plotter.start + d);
    let mut terminal = ratatui::try_init()?;
    let result = (|| -> CliResult {
        while !stopped(stop) && end.is_none_or(|e| Instant::now() < e) {
            plotter.take(Duration::from_millis(50), Some(window));
            let now = plotter.start.elapsed().as_secs_f64();
            terminal.draw(|frame| draw_live(frame, &plotter.series, window, now))?;
            if quit_pressed()? {
                break;
            }
        }
        Ok(())
    })();
    ratatui::restore();
    let series = plotter.close();
    report(&series);
    result
}

/// q, Esc or Ctrl-C (raw mode turns Ctrl-C into a key press).
fn quit_pressed() -> std::io::Result<bool> {
    use ratatui::crossterm::event::{self, Event, KeyCode, KeyModifiers};
    while event::poll(Duration::ZERO)? {
        if let Event::Key(key) = event::read()? {
            let ctrl_c =
                key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
            if ctrl_c || matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn draw_live(frame: &mut ratatui::Frame, series: &[Series], window: Duration, now: f64) {
    use ratatui::layout::Constraint;
    use ratatui::style::{Color, Style};
    use ratatui::symbols::Marker;
    use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType};
    let data: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|s| s.points.iter().copied().collect())
        .collect();
    let colours = [
        Color::Cyan,
        Color::Yellow,
        Color::Green,
        Color::Magenta,
        Color::Red,
        Color::Blue,
    ];
    let datasets = series
        .iter()
        .zip(&data)
        .enumerate()
        .map(|(i, (s, points))| {
            let name = if s.skipped > 0 {
                format!("{} ({} non-numeric skipped)", s.topic, s.skipped)
            } else {
                s.topic.clone()
            };
            Dataset::default()
                .name(name)
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::default().fg(colours[i % colours.len()]))
                .data(points)
        })
        .collect();
    let x0 = (now - window.as_secs_f64()).max(0.0);
    let (y0, y1) = y_range(series);
    let skipped: u64 = series.iter().map(|s| s.skipped).sum();
    let chart = Chart::new(datasets)
        .block(Block::bordered().title(format!(
            " zerosmq plot, last {} s, {skipped} non-numeric skipped (q to quit) ",
            window.as_secs_f64()
        )))
        // Show the legend unless it would cover more than half the chart.
        .hidden_legend_constraints((Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)))
        .x_axis(
            Axis::default()
                .title("s")
                .bounds([x0, now.max(x0 + 1e-3)])
                .labels([format!("{x0:.1}"), format!("{now:.1}")]),
        )
        .y_axis(
            Axis::default()
                .bounds([y0, y1])
                .labels([format!("{y0:.3}"), format!("{y1:.3}")]),
        );
    frame.render_widget(chart, frame.area());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_not_numbers() {
        assert_eq!(numeric(b" 3.5\n"), Some(3.5));
        assert_eq!(numeric(b"-1e3"), Some(-1000.0));
        for bad in [&b"abc"[..], b"", b"NaN", b"inf", &[0xff, 0x31]] {
            assert_eq!(numeric(bad), None, "{bad:?}");
        }
        assert_eq!(parse_size("640x480"), Ok((640, 480)));
        assert!(parse_size("640").is_err());
        assert!(parse_size("1x1").is_err());
    }
}
