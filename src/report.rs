//! The `classify` command: read CloudWatch events from files or stdin, run
//! them through the same [`Pipeline`] the daemon uses, and print the cause
//! table, JSON Lines, or the Prometheus exposition.
//!
//! Accepted input, detected per file:
//! - the JSON document printed by `aws logs filter-log-events` or
//!   `get-log-events` (`{"events":[…]}`);
//! - JSON Lines, one event object per line (`logGroupName`, `logStreamName`,
//!   `timestamp`, `eventId`, `message`; only `message` is required).
//!
//! Lines that are not events are reported on stderr with their position and
//! skipped; the command fails only when nothing at all could be read.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use prometheus::Registry;
use serde::Deserialize;

use crate::cli::{ClassifyArgs, OutputFormat};
use crate::event::RawEvent;
use crate::metrics::{self, Limits, Metrics};
use crate::pipeline::{Outcome, Pipeline, PipelineConfig};

/// One event as the AWS CLI and CloudWatch APIs spell it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CliEvent {
    #[serde(default)]
    log_group_name: Option<String>,
    #[serde(default)]
    log_stream_name: Option<String>,
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(default)]
    event_id: Option<String>,
    message: String,
}

#[derive(Debug, Deserialize)]
struct CliDocument {
    events: Vec<CliEvent>,
}

impl CliEvent {
    fn into_raw(self, default_group: &str) -> RawEvent {
        RawEvent {
            log_group: self
                .log_group_name
                .unwrap_or_else(|| default_group.to_owned()),
            log_stream: self.log_stream_name.unwrap_or_default(),
            event_id: self.event_id.unwrap_or_default(),
            timestamp_ms: self.timestamp.unwrap_or(0),
            message: self.message,
        }
    }
}

/// Problems with the input itself (not with log messages, which the
/// pipeline counts).
#[derive(Debug, Default)]
pub struct InputProblems {
    pub lines: Vec<String>,
}

/// Reads events from one input's text. Returns the events and a description
/// of every line that was not an event.
pub fn read_events(
    text: &str,
    source: &str,
    default_group: &str,
) -> (Vec<RawEvent>, InputProblems) {
    let mut problems = InputProblems::default();
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        // A whole-document `{"events":[…]}`? Try it before JSON Lines.
        if let Ok(doc) = serde_json::from_str::<CliDocument>(trimmed) {
            let events = doc
                .events
                .into_iter()
                .map(|e| e.into_raw(default_group))
                .collect();
            return (events, problems);
        }
    }
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<CliEvent>(line) {
            Ok(e) => events.push(e.into_raw(default_group)),
            Err(err) => problems.lines.push(format!(
                "{source}:{}: not a CloudWatch event object ({err}); expected JSON with a \"message\" string, or the output of `aws logs filter-log-events`",
                i + 1
            )),
        }
    }
    (events, problems)
}

fn read_input(path: &Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        return Ok(s);
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    // Invalid UTF-8 in a log dump must not lose the rest of the file.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

pub fn run(args: &ClassifyArgs) -> anyhow::Result<ExitCode> {
    let default_group = args.log_group.clone().unwrap_or_default();
    let stdin_only = [std::path::PathBuf::from("-")];
    let paths: &[std::path::PathBuf] = if args.files.is_empty() {
        &stdin_only
    } else {
        &args.files
    };

    let registry = Registry::new();
    let metrics = Arc::new(Metrics::new(
        &registry,
        Limits {
            max_users_per_server: args.max_users_per_server,
            ..Limits::default()
        },
    ));
    let mut pipeline = Pipeline::new(
        metrics,
        PipelineConfig {
            recent_failures: 0,
            ..Default::default()
        },
    );

    let mut outcomes = Vec::new();
    let mut unreadable = 0usize;
    let mut read_any = false;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for path in paths {
        let name = path.display().to_string();
        let text = match read_input(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("aws-transfer-exporter: {e:#}");
                unreadable += 1;
                continue;
            }
        };
        let (events, problems) = read_events(&text, &name, &default_group);
        for p in &problems.lines {
            eprintln!("aws-transfer-exporter: skipped {p}");
        }
        unreadable += problems.lines.len();
        read_any |= !events.is_empty();
        for raw in &events {
            let o = pipeline.process(raw);
            if args.output == OutputFormat::Jsonl {
                serde_json::to_writer(&mut out, &o).context("writing output")?;
                out.write_all(b"\n").context("writing output")?;
            } else {
                outcomes.push(o.to_static());
            }
        }
    }
    if !read_any {
        bail!(
            "no events could be read from {} ({unreadable} unreadable inputs or lines); \
             give the output of `aws logs filter-log-events` or JSON Lines with a \"message\" field",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    match args.output {
        OutputFormat::Jsonl => {}
        OutputFormat::Prometheus => out.write_all(metrics::render(&registry).as_bytes())?,
        OutputFormat::Openmetrics => {
            out.write_all(crate::web::encode::render_openmetrics(&registry).as_bytes())?
        }
        OutputFormat::Table => out.write_all(table(&outcomes, unreadable).as_bytes())?,
    }
    out.flush().context("writing output")?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Default)]
struct Row {
    count: u64,
    servers: BTreeSet<String>,
    users: BTreeSet<String>,
    advice: &'static str,
}

fn list(set: &BTreeSet<String>, max: usize) -> String {
    let v: Vec<&str> = set.iter().map(String::as_str).take(max).collect();
    if v.is_empty() {
        return "-".into();
    }
    let more = set.len().saturating_sub(max);
    let mut s = v.join(",");
    if more > 0 {
        s.push_str(&format!(",+{more}"));
    }
    s
}

/// The cause summary an operator reads: one row per (category, cause).
pub fn table(outcomes: &[Outcome<'_>], unreadable_lines: usize) -> String {
    let mut rows: BTreeMap<(&str, &str), Row> = BTreeMap::new();
    let mut parse_errors: BTreeMap<&str, u64> = BTreeMap::new();
    let mut ok = 0u64;
    for o in outcomes {
        if let Some(e) = o.parse_error {
            *parse_errors.entry(e).or_default() += 1;
            continue;
        }
        let (Some(category), Some(cause)) = (o.category, o.cause) else {
            ok += 1;
            continue;
        };
        let row = rows.entry((category, cause)).or_default();
        row.count += 1;
        row.advice = o.advice.unwrap_or("");
        if let Some(s) = &o.server_id {
            row.servers.insert(s.to_string());
        }
        if let Some(u) = o.user.as_ref().filter(|u| !u.is_empty()) {
            row.users.insert(u.to_string());
        }
    }
    let mut sorted: Vec<_> = rows.into_iter().collect();
    sorted.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(&b.0)));

    let failures: u64 = sorted.iter().map(|(_, r)| r.count).sum();
    let mut s = String::new();
    s.push_str(&format!(
        "{} events: {} failures, {} other events, {} unparseable\n\n",
        outcomes.len(),
        failures,
        ok,
        parse_errors.values().sum::<u64>()
    ));
    if sorted.is_empty() {
        s.push_str("No failures.\n");
    } else {
        let cells: Vec<[String; 5]> = sorted
            .iter()
            .map(|((cat, cause), r)| {
                [
                    r.count.to_string(),
                    format!("{cat}/{cause}"),
                    list(&r.servers, 2),
                    list(&r.users, 3),
                    r.advice.to_owned(),
                ]
            })
            .collect();
        let head = ["COUNT", "CAUSE", "SERVERS", "USERS", "ADVICE"];
        let mut w = head.map(str::len);
        for c in &cells {
            for i in 0..4 {
                w[i] = w[i].max(c[i].chars().count());
            }
        }
        let line = |c: [&str; 5]| {
            format!(
                "{:>w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}\n",
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3]
            )
        };
        s.push_str(&line(head));
        for c in &cells {
            s.push_str(&line([&c[0], &c[1], &c[2], &c[3], &c[4]]));
        }
    }
    if !parse_errors.is_empty() {
        let parts: Vec<String> = parse_errors
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        s.push_str(&format!("\nunparseable messages: {}\n", parts.join(" ")));
    }
    if unreadable_lines > 0 {
        s.push_str(&format!(
            "input lines that were not events: {unreadable_lines} (see stderr)\n"
        ));
    }
    s
}
