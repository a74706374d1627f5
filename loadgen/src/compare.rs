//! `compare`: two reports of the same scenario, run one after the other
//! under the same pinning (`scripts/bench-loadgen --compare nats`), side
//! by side with their ratios.
//!
//! This machine's absolute speed changes from hour to hour, so a figure is
//! read as a ratio to the reference measured in the same session: every
//! ratio here is first / second (Confab / NATS). For rates and deliveries
//! per server CPU-second, below 1 means the first side does less; for
//! latencies, above 1 means it is slower. Steps are paired by offered
//! rate (a sweep's rates are the same on both sides until one side stops).

use std::fmt::Write;

use serde::Serialize;

use crate::stats::{Background, RunReport, SetupReport, StepReport};

/// The figures of one side of one step.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Figures {
    pub offered_per_s: f64,
    pub offered_deliveries_per_s: f64,
    pub delivered_per_s: f64,
    pub delivered_ratio: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub server_cpu_utilization: Option<f64>,
    pub deliveries_per_server_cpu_s: Option<f64>,
    pub send_lateness_p50_ms: f64,
    pub send_lateness_p99_ms: f64,
    pub loadgen_cpu_utilization: f64,
    pub loadgen_saturated: bool,
    pub errors: u64,
    pub pass: Option<bool>,
    /// Other processes' share of each core during the window.
    pub background_other_share: Vec<f64>,
    /// Share of the window with some task stalled on I/O.
    pub background_io_pressure: Option<f64>,
}

impl Figures {
    fn of(s: &StepReport) -> Figures {
        Figures {
            offered_per_s: s.offered_per_s,
            offered_deliveries_per_s: s.offered_deliveries_per_s,
            delivered_per_s: s.delivered_per_s,
            delivered_ratio: s.delivered_ratio,
            p50_ms: s.latency.p50_ms,
            p99_ms: s.latency.p99_ms,
            p999_ms: s.latency.p999_ms,
            server_cpu_utilization: s.server.as_ref().map(|u| u.cpu_utilization),
            deliveries_per_server_cpu_s: s.deliveries_per_server_cpu_s,
            send_lateness_p50_ms: s.send_lateness.p50_ms,
            send_lateness_p99_ms: s.send_lateness.p99_ms,
            loadgen_cpu_utilization: s.loadgen.cpu_utilization,
            loadgen_saturated: s.loadgen.saturated,
            errors: s.errors,
            pass: s.pass,
            background_other_share: s
                .background
                .iter()
                .flat_map(|b| b.cores.iter().map(|c| c.other_share))
                .collect(),
            background_io_pressure: s.background.as_ref().and_then(|b| b.io_pressure),
        }
    }
}

/// First / second of each figure (absent where either is absent or the
/// second is zero).
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Ratios {
    pub delivered_per_s: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub server_cpu_utilization: Option<f64>,
    pub deliveries_per_server_cpu_s: Option<f64>,
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 && a.is_finite() && b.is_finite() => Some(a / b),
        _ => None,
    }
}

impl Ratios {
    fn of(a: &Figures, b: &Figures) -> Ratios {
        Ratios {
            delivered_per_s: ratio(Some(a.delivered_per_s), Some(b.delivered_per_s)),
            p50_ms: ratio(Some(a.p50_ms), Some(b.p50_ms)),
            p99_ms: ratio(Some(a.p99_ms), Some(b.p99_ms)),
            p999_ms: ratio(Some(a.p999_ms), Some(b.p999_ms)),
            server_cpu_utilization: ratio(a.server_cpu_utilization, b.server_cpu_utilization),
            deliveries_per_server_cpu_s: ratio(
                a.deliveries_per_server_cpu_s,
                b.deliveries_per_server_cpu_s,
            ),
        }
    }
}

/// One offered rate, on either or both sides.
#[derive(Debug, Clone, Serialize)]
pub struct StepPair {
    pub name: String,
    pub offered_per_s: f64,
    pub a: Option<Figures>,
    pub b: Option<Figures>,
    pub ratio: Option<Ratios>,
}

/// A sweep's highest sustainable rate on each side.
#[derive(Debug, Clone, Serialize)]
pub struct BestPair {
    /// Offered deliveries per second of the highest passing step.
    pub a_deliveries_per_s: Option<f64>,
    pub b_deliveries_per_s: Option<f64>,
    pub ratio: Option<f64>,
    /// Whether a side's sweep ended because the load generator was
    /// saturated: its figure is then only a lower bound.
    pub a_lower_bound: bool,
    pub b_lower_bound: bool,
}

/// Set-up of the measured connections on each side: creating the
/// population (Confab's users and memberships; nothing on NATS), then
/// opening the connections.
#[derive(Debug, Clone, Serialize)]
pub struct SetupPair {
    pub connections: usize,
    pub a: SetupReport,
    pub b: SetupReport,
    /// Population and connecting, first / second.
    pub total_ratio: Option<f64>,
    /// Connecting alone, first / second.
    pub connect_ratio: Option<f64>,
}

impl SetupPair {
    fn of(connections: usize, a: SetupReport, b: SetupReport) -> SetupPair {
        SetupPair {
            connections,
            total_ratio: ratio(Some(a.total_seconds()), Some(b.total_seconds())),
            connect_ratio: ratio(Some(a.connect_seconds), Some(b.connect_seconds)),
            a,
            b,
        }
    }
}

/// Idle connections on each side.
#[derive(Debug, Clone, Serialize)]
pub struct IdlePair {
    pub connections: (usize, usize),
    pub a_rss_per_connection_bytes: f64,
    pub b_rss_per_connection_bytes: f64,
    pub rss_ratio: Option<f64>,
    pub setup: SetupPair,
}

/// Both reports and what follows from them.
#[derive(Debug, Serialize)]
pub struct Comparison {
    pub scenario: String,
    /// The sides' targets ("confab", "nats"); every ratio is a / b.
    pub a: String,
    pub b: String,
    pub steps: Vec<StepPair>,
    pub best_passing: Option<BestPair>,
    pub setup: Option<SetupPair>,
    pub idle: Option<IdlePair>,
    pub background: (Option<Background>, Option<Background>),
    pub reports: (RunReport, RunReport),
}

/// Steps of two reports whose offered rates agree to a millionth.
fn same_rate(x: f64, y: f64) -> bool {
    (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1.0)
}

fn label(r: &RunReport) -> String {
    if r.target.is_empty() {
        r.url.split("://").next().unwrap_or("?").to_owned()
    } else {
        r.target.clone()
    }
}

/// Pairs `a`'s and `b`'s steps by offered rate (in `a`'s order, then the
/// rates only `b` reached).
pub fn compare(a: RunReport, b: RunReport) -> anyhow::Result<Comparison> {
    anyhow::ensure!(
        a.scenario == b.scenario,
        "the reports are of different scenarios ({} and {})",
        a.scenario,
        b.scenario
    );
    let mut steps: Vec<StepPair> = a
        .steps
        .iter()
        .map(|s| StepPair {
            name: s.name.clone(),
            offered_per_s: s.offered_per_s,
            a: Some(Figures::of(s)),
            b: None,
            ratio: None,
        })
        .collect();
    for s in &b.steps {
        let fig = Figures::of(s);
        match steps
            .iter_mut()
            .find(|p| p.b.is_none() && same_rate(p.offered_per_s, s.offered_per_s))
        {
            Some(p) => {
                p.ratio = p.a.as_ref().map(|a| Ratios::of(a, &fig));
                p.b = Some(fig);
            }
            None => steps.push(StepPair {
                name: s.name.clone(),
                offered_per_s: s.offered_per_s,
                a: None,
                b: Some(fig),
                ratio: None,
            }),
        }
    }
    let swept = a.params["sweep"].as_bool() == Some(true);
    let best_passing = swept.then(|| {
        let best = |r: &RunReport| r.best_passing.as_ref().map(|s| s.offered_deliveries_per_s);
        let saturated = |r: &RunReport| r.steps.last().is_some_and(|s| s.loadgen.saturated);
        BestPair {
            a_deliveries_per_s: best(&a),
            b_deliveries_per_s: best(&b),
            ratio: ratio(best(&a), best(&b)),
            a_lower_bound: saturated(&a),
            b_lower_bound: saturated(&b),
        }
    });
    let setup = match (&a.setup, &b.setup) {
        (Some(x), Some(y)) => Some(SetupPair::of(x.connections, x.clone(), y.clone())),
        _ => None,
    };
    let idle = match (&a.idle, &b.idle) {
        (Some(x), Some(y)) => Some(IdlePair {
            connections: (x.connections, y.connections),
            a_rss_per_connection_bytes: x.server_rss_per_connection_bytes,
            b_rss_per_connection_bytes: y.server_rss_per_connection_bytes,
            rss_ratio: ratio(
                Some(x.server_rss_per_connection_bytes),
                Some(y.server_rss_per_connection_bytes),
            ),
            setup: SetupPair::of(
                x.connections,
                SetupReport {
                    connections: x.connections,
                    population_seconds: x.population_seconds,
                    connect_seconds: x.connect_seconds,
                },
                SetupReport {
                    connections: y.connections,
                    population_seconds: y.population_seconds,
                    connect_seconds: y.connect_seconds,
                },
            ),
        }),
        _ => None,
    };
    Ok(Comparison {
        scenario: a.scenario.clone(),
        a: label(&a),
        b: label(&b),
        steps,
        best_passing,
        setup,
        idle,
        background: (a.background.clone(), b.background.clone()),
        reports: (a, b),
    })
}

fn num(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "-".into(),
    }
}

fn rate(v: f64) -> String {
    format!("{v:.0}")
}

/// Output styles of [`Comparison::render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    Text,
    /// A Markdown table (BENCHMARKS.md).
    Markdown,
}

impl Comparison {
    /// The comparison as a table, then the sweep's best rates, set-up,
    /// idle figures and both runs' background load.
    pub fn render(&self, format: Format) -> String {
        let header = [
            "step",
            "target",
            "offered msg/s",
            "offered dl/s",
            "delivered/s",
            "delivered",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "server CPU",
            "dl / server CPU-s",
            "send late p50/p99 ms",
            "others' CPU per core (I/O stall)",
        ];
        let mut rows: Vec<Vec<String>> = Vec::new();
        for p in &self.steps {
            for (side, fig) in [(&self.a, &p.a), (&self.b, &p.b)] {
                let Some(f) = fig else {
                    rows.push(vec![
                        p.name.clone(),
                        side.clone(),
                        rate(p.offered_per_s),
                        "(not run)".into(),
                    ]);
                    continue;
                };
                let pass = match f.pass {
                    Some(true) => " ✓",
                    Some(false) => " ✗",
                    None => "",
                };
                rows.push(vec![
                    p.name.clone(),
                    side.clone(),
                    rate(f.offered_per_s),
                    rate(f.offered_deliveries_per_s),
                    rate(f.delivered_per_s),
                    format!("{:.1} %{pass}", f.delivered_ratio * 100.0),
                    format!("{:.3}", f.p50_ms),
                    format!("{:.3}", f.p99_ms),
                    format!("{:.3}", f.p999_ms),
                    num(f.server_cpu_utilization.map(|u| u * 100.0), 0) + " %",
                    num(f.deliveries_per_server_cpu_s, 0),
                    format!(
                        "{:.3} / {:.3}{}",
                        f.send_lateness_p50_ms,
                        f.send_lateness_p99_ms,
                        if f.loadgen_saturated {
                            " (saturated)"
                        } else {
                            ""
                        }
                    ),
                    f.background_other_share
                        .iter()
                        .map(|s| format!("{:.0} %", s * 100.0))
                        .collect::<Vec<_>>()
                        .join(" / ")
                        + &f.background_io_pressure
                            .map(|p| format!(" ({:.0} %)", p * 100.0))
                            .unwrap_or_default(),
                ]);
            }
            if let Some(r) = &p.ratio {
                rows.push(vec![
                    p.name.clone(),
                    format!("{}/{}", self.a, self.b),
                    String::new(),
                    String::new(),
                    num(r.delivered_per_s, 2),
                    String::new(),
                    num(r.p50_ms, 2),
                    num(r.p99_ms, 2),
                    num(r.p999_ms, 2),
                    num(r.server_cpu_utilization, 2),
                    num(r.deliveries_per_server_cpu_s, 2),
                    String::new(),
                    String::new(),
                ]);
            }
        }
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}: {} vs {} (ratios are {}/{})",
            self.scenario, self.a, self.b, self.a, self.b
        );
        if !rows.is_empty() {
            out.push_str(&table(&header, &rows, format));
        }
        if let Some(b) = &self.best_passing {
            let side = |v: Option<f64>, lower: bool| match v {
                Some(v) => format!(
                    "{v:.0} deliveries/s{}",
                    if lower {
                        " (at least: the load generator saturated)"
                    } else {
                        ""
                    }
                ),
                None => "no step passed".into(),
            };
            let _ = writeln!(
                out,
                "highest sustainable rate (≥ 95 % delivered, p99 ≤ 100 ms): {} {}, {} {}; ratio {}",
                self.a,
                side(b.a_deliveries_per_s, b.a_lower_bound),
                self.b,
                side(b.b_deliveries_per_s, b.b_lower_bound),
                num(b.ratio, 3)
            );
        }
        if let Some(s) = &self.setup {
            out.push_str(&self.setup_line(s));
        }
        if let Some(i) = &self.idle {
            let _ = writeln!(
                out,
                "idle: server RSS per connection {} {:.0} B ({} connections), {} {:.0} B ({}); ratio {}",
                self.a,
                i.a_rss_per_connection_bytes,
                i.connections.0,
                self.b,
                i.b_rss_per_connection_bytes,
                i.connections.1,
                num(i.rss_ratio, 2),
            );
            out.push_str(&self.setup_line(&i.setup));
        }
        for (side, bg) in [(&self.a, &self.background.0), (&self.b, &self.background.1)] {
            if let Some(bg) = bg {
                let _ = writeln!(out, "background, {side} run: {}", bg.summary());
            }
        }
        out
    }
}

impl Comparison {
    fn setup_line(&self, s: &SetupPair) -> String {
        let side = |r: &SetupReport| {
            if r.population_seconds > 0.0 {
                format!(
                    "{:.2} s ({:.2} s users and rooms + {:.2} s connecting)",
                    r.total_seconds(),
                    r.population_seconds,
                    r.connect_seconds
                )
            } else {
                format!("{:.2} s", r.total_seconds())
            }
        };
        format!(
            "set-up of {} connections: {} {}, {} {}; ratio {} (connecting alone {})\n",
            s.connections,
            self.a,
            side(&s.a),
            self.b,
            side(&s.b),
            num(s.total_ratio, 1),
            num(s.connect_ratio, 2)
        )
    }
}

fn table(header: &[&str], rows: &[Vec<String>], format: Format) -> String {
    let mut out = String::new();
    match format {
        Format::Markdown => {
            let _ = writeln!(out, "| {} |", header.join(" | "));
            let _ = writeln!(
                out,
                "|{}",
                header
                    .iter()
                    .enumerate()
                    .map(|(i, _)| if i < 2 { "---|" } else { "---:|" })
                    .collect::<String>()
            );
            for r in rows {
                let mut cells = r.clone();
                cells.resize(header.len(), String::new());
                let _ = writeln!(out, "| {} |", cells.join(" | "));
            }
        }
        Format::Text => {
            let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
            for r in rows {
                for (i, c) in r.iter().enumerate() {
                    widths[i] = widths[i].max(c.chars().count());
                }
            }
            let line = |cells: Vec<&str>| {
                let mut l = String::new();
                for (i, c) in cells.iter().enumerate() {
                    let pad = widths[i] - c.chars().count();
                    if i < 2 {
                        l.push_str(c);
                        l.push_str(&" ".repeat(pad));
                    } else {
                        l.push_str(&" ".repeat(pad));
                        l.push_str(c);
                    }
                    l.push_str("  ");
                }
                l.trim_end().to_owned()
            };
            let _ = writeln!(out, "{}", line(header.to_vec()));
            for r in rows {
                let _ = writeln!(out, "{}", line(r.iter().map(String::as_str).collect()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Percentiles, ServerUsage};

    fn step(rate: f64, p99: f64, eff: f64) -> StepReport {
        StepReport {
            name: format!("s{rate}"),
            offered_per_s: rate,
            offered_deliveries_per_s: rate * 10.0,
            delivered_per_s: rate * 10.0,
            delivered_ratio: 1.0,
            latency: Percentiles {
                p50_ms: p99 / 4.0,
                p99_ms: p99,
                p999_ms: p99 * 2.0,
                ..Percentiles::default()
            },
            server: Some(ServerUsage {
                cpu_utilization: 0.5,
                ..ServerUsage::default()
            }),
            deliveries_per_server_cpu_s: Some(eff),
            ..StepReport::default()
        }
    }

    fn report(target: &str, steps: Vec<StepReport>, best: Option<usize>) -> RunReport {
        RunReport {
            scenario: "fanout".into(),
            target: target.into(),
            params: serde_json::json!({"sweep": true}),
            best_passing: best.map(|i| steps[i].clone()),
            steps,
            ..RunReport::default()
        }
    }

    /// Steps pair by rate; a rate only one side reached stands alone;
    /// ratios are first / second.
    #[test]
    fn steps_pair_by_rate_and_ratios_are_first_over_second() {
        let a = report(
            "confab",
            vec![step(100.0, 8.0, 50.0), step(150.0, 200.0, 60.0)],
            Some(0),
        );
        let b = report(
            "nats",
            vec![
                step(100.0, 2.0, 200.0),
                step(150.0, 2.0, 250.0),
                step(225.0, 3.0, 300.0),
            ],
            Some(2),
        );
        let c = compare(a, b).expect("same scenario");
        assert_eq!((c.a.as_str(), c.b.as_str()), ("confab", "nats"));
        assert_eq!(c.steps.len(), 3);
        let r = c.steps[0].ratio.as_ref().expect("paired");
        assert_eq!(r.p99_ms, Some(4.0));
        assert_eq!(r.deliveries_per_server_cpu_s, Some(0.25));
        assert!(c.steps[2].a.is_none() && c.steps[2].ratio.is_none());
        let best = c.best_passing.as_ref().expect("a sweep");
        assert_eq!(best.a_deliveries_per_s, Some(1000.0));
        assert_eq!(best.b_deliveries_per_s, Some(2250.0));
        assert!((best.ratio.unwrap() - 1000.0 / 2250.0).abs() < 1e-12);
        for format in [Format::Text, Format::Markdown] {
            let t = c.render(format);
            assert!(t.contains("confab/nats"), "{t}");
            assert!(t.contains("(not run)"), "{t}");
        }
    }

    #[test]
    fn different_scenarios_do_not_compare() {
        let a = report("confab", Vec::new(), None);
        let mut b = report("nats", Vec::new(), None);
        b.scenario = "big-room".into();
        assert!(compare(a, b).is_err());
    }
}
