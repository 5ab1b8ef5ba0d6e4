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

use std::collections::BTreeMap;
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

    let mut table = CauseTable::default();
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
            match args.output {
                OutputFormat::Jsonl => {
                    serde_json::to_writer(&mut out, &o).context("writing output")?;
                    out.write_all(b"\n").context("writing output")?;
                }
                OutputFormat::Table => table.add(&o),
                OutputFormat::Prometheus | OutputFormat::Openmetrics => {}
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
        OutputFormat::Table => {
            let layout = if args.wide {
                Layout::Wide
            } else {
                Layout::Narrow
            };
            out.write_all(table.render(unreadable, layout).as_bytes())?
        }
    }
    out.flush().context("writing output")?;
    Ok(ExitCode::SUCCESS)
}

/// Distinct server and user names remembered per cause row. Only the first
/// few (in sort order) are printed and the rest counted, so keeping more
/// only makes the count exact; the cap keeps memory bounded when strangers'
/// names flood a cause (unknown users).
const MAX_NAMES_PER_ROW: usize = 256;

/// The smallest [`MAX_NAMES_PER_ROW`] distinct names seen, and whether
/// more were seen.
#[derive(Default)]
struct Names {
    set: std::collections::BTreeSet<String>,
    more: bool,
}

impl Names {
    fn insert(&mut self, name: &str) {
        // Names from the log go to a terminal: clean them by the label rule
        // (no escape sequences, no line breaks).
        let name = metrics::sanitize_label_value(name);
        if self.set.contains(&*name) {
            return;
        }
        if self.set.len() < MAX_NAMES_PER_ROW {
            self.set.insert(name.into_owned());
            return;
        }
        self.more = true;
        let largest = self.set.last().expect("full set is not empty");
        if *name < **largest {
            self.set.pop_last();
            self.set.insert(name.into_owned());
        }
    }

    /// The first `max` names joined with `sep`, then `+N` for the rest (`-`
    /// when none).
    fn list(&self, max: usize, sep: &str) -> String {
        let v: Vec<&str> = self.set.iter().map(String::as_str).take(max).collect();
        if v.is_empty() {
            return "-".into();
        }
        let mut s = v.join(sep);
        let more = self.set.len().saturating_sub(max);
        if more > 0 || self.more {
            s.push_str(sep);
            s.push_str(&format!("+{more}"));
            if self.more {
                s.push_str(" or more");
            }
        }
        s
    }
}

#[derive(Default)]
struct Row {
    count: u64,
    servers: Names,
    users: Names,
    advice: &'static str,
}

/// How the table is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// At most [`NARROW_WIDTH`] columns: one line per cause, with where it
    /// happened and the advice wrapped under it.
    Narrow,
    /// One line per cause with every column side by side (as wide as the
    /// longest advice, ~270 columns).
    Wide,
}

/// Width of the default layout: a normal terminal.
pub const NARROW_WIDTH: usize = 100;

/// The cause summary an operator reads, accumulated one outcome at a time
/// (memory bounded by the cause vocabulary, not by the number of events).
#[derive(Default)]
pub struct CauseTable {
    rows: BTreeMap<(&'static str, &'static str), Row>,
    parse_errors: BTreeMap<&'static str, u64>,
    events: u64,
    ok: u64,
}

impl CauseTable {
    pub fn add(&mut self, o: &Outcome<'_>) {
        self.events += 1;
        if let Some(e) = o.parse_error {
            *self.parse_errors.entry(e).or_default() += 1;
            return;
        }
        let (Some(category), Some(cause)) = (o.category, o.cause) else {
            self.ok += 1;
            return;
        };
        let row = self.rows.entry((category, cause)).or_default();
        row.count += 1;
        row.advice = o.advice.unwrap_or("");
        if let Some(s) = &o.server_id {
            row.servers.insert(s);
        }
        if let Some(u) = o.user.as_ref().filter(|u| !u.is_empty()) {
            row.users.insert(u);
        }
    }

    /// The table text; `unreadable_lines` input lines were not events.
    pub fn render(&self, unreadable_lines: usize, layout: Layout) -> String {
        let mut sorted: Vec<_> = self.rows.iter().collect();
        sorted.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));

        let failures: u64 = sorted.iter().map(|(_, r)| r.count).sum();
        let mut s = String::new();
        s.push_str(&format!(
            "{} events: {} failures, {} other events, {} unparseable\n\n",
            self.events,
            failures,
            self.ok,
            self.parse_errors.values().sum::<u64>()
        ));
        if sorted.is_empty() {
            s.push_str("No failures.\n");
        } else {
            match layout {
                Layout::Wide => wide(&mut s, &sorted),
                Layout::Narrow => narrow(&mut s, &sorted),
            }
        }
        if !self.parse_errors.is_empty() {
            let parts: Vec<String> = self
                .parse_errors
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
}

type SortedRows<'a> = [(&'a (&'static str, &'static str), &'a Row)];

fn wide(s: &mut String, sorted: &SortedRows<'_>) {
    let cells: Vec<[String; 5]> = sorted
        .iter()
        .map(|((cat, cause), r)| {
            [
                r.count.to_string(),
                format!("{cat}/{cause}"),
                r.servers.list(2, ","),
                r.users.list(3, ","),
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

/// One block per cause, every line at most [`NARROW_WIDTH`] characters:
///
/// ```text
/// COUNT  CAUSE
///     3  iam/access_denied
///        servers: s-0123456789abcdef0, s-0fedcba9876543210   users: alice, carol, +1
///        The user's IAM role or session policy lacks S3 (or KMS, for SSE-KMS
///        uploads) permissions for this bucket/prefix: …
/// ```
fn narrow(s: &mut String, sorted: &SortedRows<'_>) {
    let count_w = sorted
        .iter()
        .map(|(_, r)| r.count.to_string().len())
        .max()
        .unwrap_or(0)
        .max("COUNT".len());
    let indent = " ".repeat(count_w + 2);
    s.push_str(&format!("{:>count_w$}  CAUSE\n", "COUNT"));
    for (i, ((cat, cause), r)) in sorted.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        let head = format!("{:>count_w$}  {cat}/{cause}", r.count);
        wrap_into(s, &head, &indent, NARROW_WIDTH);
        let place = format!(
            "{indent}servers: {}   users: {}",
            r.servers.list(2, ", "),
            r.users.list(3, ", ")
        );
        wrap_into(s, &place, &indent, NARROW_WIDTH);
        wrap_into(s, &format!("{indent}{}", r.advice), &indent, NARROW_WIDTH);
    }
}

/// Appends `text` (which starts with its own indentation) wrapped at spaces
/// to `width` characters; continuation lines start with `indent`. A word
/// longer than a line is cut.
fn wrap_into(out: &mut String, text: &str, indent: &str, width: usize) {
    if text.chars().count() <= width {
        out.push_str(text);
        out.push('\n');
        return;
    }
    let first_indent = text.len() - text.trim_start().len();
    let mut line = String::from(&text[..first_indent]);
    let mut line_len = first_indent;
    let mut fresh = true;
    for word in text[first_indent..].split(' ').filter(|w| !w.is_empty()) {
        let mut word = word;
        let wlen = word.chars().count();
        let sep = usize::from(!fresh);
        if line_len + sep + wlen > width && !fresh {
            out.push_str(&line);
            out.push('\n');
            line = indent.to_owned();
            line_len = indent.len();
            fresh = true;
        }
        if !fresh {
            line.push(' ');
            line_len += 1;
        }
        // A word wider than a whole line: cut it.
        while line_len + word.chars().count() > width {
            let room = width.saturating_sub(line_len).max(1);
            let cut = word.char_indices().nth(room).map_or(word.len(), |(i, _)| i);
            line.push_str(&word[..cut]);
            out.push_str(&line);
            out.push('\n');
            word = &word[cut..];
            line = indent.to_owned();
            line_len = indent.len();
        }
        line.push_str(word);
        line_len += word.chars().count();
        fresh = false;
    }
    out.push_str(&line);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn wrap_keeps_every_line_within_width_and_every_word() {
        let long = format!("{} {}", "word ".repeat(40), "x".repeat(250));
        let mut out = String::new();
        wrap_into(&mut out, &format!("       {long}"), "       ", 100);
        for l in out.lines() {
            assert!(l.chars().count() <= 100, "{l:?}");
            assert!(l.starts_with("       "), "{l:?}");
        }
        let words: String = out.split_whitespace().collect();
        assert_eq!(words, long.split_whitespace().collect::<String>());
    }

    #[test]
    fn names_keep_the_smallest_and_count_the_rest() {
        let mut n = Names::default();
        for i in (0..1000).rev() {
            n.insert(&format!("u{i:04}"));
        }
        assert_eq!(n.set.len(), MAX_NAMES_PER_ROW);
        assert_eq!(n.list(3, ","), "u0000,u0001,u0002,+253 or more");
        let mut few = Names::default();
        for u in ["b", "a", "c", "a", "d"] {
            few.insert(u);
        }
        assert_eq!(few.list(3, ","), "a,b,c,+1");
        assert_eq!(Names::default().list(3, ","), "-");
    }
}
