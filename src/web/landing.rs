//! The landing page (`/`): what an operator opening the exporter came for,
//! in that order.
//!
//! 1. Alarms: the Firehose receiver accepting unauthenticated requests, AWS
//!    APIs failing (credentials, permissions, network).
//! 2. Failures by cause since the start, per server, with the advice of the
//!    classification table; then the recent failures themselves.
//! 3. Per target, the state and last error of each AWS API (what failed,
//!    since when, how often, the fix).
//! 4. Log groups: poll health (time since the last successful poll) apart
//!    from the age of the newest event (which grows on a quiet server).
//! 5. The push receiver (listen address, last request, last error).
//! 6. The configured targets.
//!
//! The page is plain HTML with a little CSS, no script. Everything taken from
//! logs or from the outside is escaped ([`escape`]), and characters that
//! would corrupt its display (controls, bidirectional overrides) are shown
//! as `\u{…}`. Long values (messages, user names, fingerprints) are
//! shortened with the full text in the `title` attribute (shown on hover);
//! ids, ARNs and timestamps never wrap, and wide tables scroll.
//!
//! The page knows nothing of the daemon: [`Page`] holds what it shows, and
//! the HTTP server fills it from the daemon's view.

use std::fmt::Write as _;
use std::time::Duration;

use crate::metrics::is_unsafe_in_label;

/// Log groups listed on the landing page; beyond this the page says how many
/// more there are (the metrics have them all).
pub const MAX_GROUPS_ON_PAGE: usize = 200;

/// Servers listed per cause in the summary (most failures first); the rest
/// are added up in one line. The metrics have them all.
pub const MAX_SERVERS_PER_CAUSE_ON_PAGE: usize = 10;

/// Characters of a message shown in a table cell; the full text is in the
/// cell's `title`. About one line at a normal window width, so the advice
/// column keeps its room.
pub const MESSAGE_CHARS: usize = 80;

/// Characters of a user name or id shown; the full value is in `title`.
/// Transfer Family user names are at most 100 characters (most are far
/// shorter), server ids 19.
pub const NAME_CHARS: usize = 32;

/// One polled log group.
#[derive(Debug, Clone, Default)]
pub struct GroupRow {
    pub target: String,
    pub log_group: String,
    /// Time of the last successful poll round, Unix seconds.
    pub last_poll_unix: Option<f64>,
    /// Timestamp of the newest event counted from the group, Unix ms.
    pub newest_event_ms: Option<i64>,
    /// Last error, if the last round failed.
    pub last_error: Option<String>,
}

/// One recent classified failure.
#[derive(Debug, Clone, Default)]
pub struct FailureRow {
    pub timestamp_ms: i64,
    pub log_group: String,
    pub server_id: String,
    pub user: String,
    pub category: String,
    pub cause: String,
    pub advice: String,
    pub message: String,
}

/// One configured target.
#[derive(Debug, Clone, Default)]
pub struct TargetRow {
    pub name: String,
    pub region: String,
    pub endpoint_url: Option<String>,
    pub role_arn: Option<String>,
}

/// Failures of one cause on one server since the start.
#[derive(Debug, Clone, Default)]
pub struct CauseServerRow {
    /// Empty when the events named no server.
    pub server_id: String,
    pub count: u64,
    /// Newest failure counted, Unix ms.
    pub last_ms: i64,
}

/// Failures of one cause since the start.
#[derive(Debug, Clone, Default)]
pub struct CauseRow {
    pub category: String,
    pub cause: String,
    pub advice: String,
    pub total: u64,
    /// Most failures first.
    pub servers: Vec<CauseServerRow>,
}

/// A target's failing (or last failed) streak of calls to one AWS API.
#[derive(Debug, Clone, Default)]
pub struct ApiFailureRow {
    /// The operation that failed first in the streak (`ListServers`, …).
    pub operation: String,
    /// The outcome: credentials, denied, throttled, transient, other.
    pub outcome: String,
    pub message: String,
    pub fix: String,
    pub since_unix: f64,
    pub count: u64,
    /// When a later call succeeded; `None` while failing.
    pub recovered_unix: Option<f64>,
}

/// One target's use of one AWS API.
#[derive(Debug, Clone, Default)]
pub struct ApiRow {
    pub target: String,
    /// `logs` or `transfer`.
    pub api: String,
    /// `None` before the first call.
    pub up: Option<bool>,
    pub last_error: Option<ApiFailureRow>,
}

/// The Firehose push receiver, when it is on.
#[derive(Debug, Clone, Default)]
pub struct PushRow {
    pub listen_address: String,
    pub path: String,
    pub last_request_unix: Option<f64>,
    /// `requests_total` outcome of the last request.
    pub last_outcome: Option<String>,
    /// Time and text of the last rejected request or undecodable record.
    pub last_error: Option<(f64, String)>,
    /// Requests answered since the start, per outcome.
    pub requests: Vec<(String, u64)>,
    /// Set when requests are accepted without an access key.
    pub unauthenticated_warning: Option<String>,
}

/// Everything the page shows.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub telemetry_path: String,
    pub version: String,
    pub revision: String,
    pub ready: bool,
    /// When this process started, Unix seconds (counts are since then).
    pub started_unix: Option<f64>,
    pub targets: Vec<TargetRow>,
    /// Most failures first.
    pub causes: Vec<CauseRow>,
    /// Newest first.
    pub failures: Vec<FailureRow>,
    pub apis: Vec<ApiRow>,
    pub groups: Vec<GroupRow>,
    pub push: Option<PushRow>,
}

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em;color:#1a1a1a;line-height:1.35}\
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;margin:1.6em 0 .4em}\
.scroll{overflow-x:auto;max-width:100%}\
table{border-collapse:collapse;margin:.3em 0 1em}\
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f2f2f2;white-space:nowrap}\
.nw,.id,.ts,.num{white-space:nowrap}\
code{white-space:nowrap}\
.id,.ts{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.92em}\
.num{text-align:right;font-variant-numeric:tabular-nums}\
.clip{display:inline-block;max-width:36em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;vertical-align:top}\
.advice{min-width:22em;max-width:44em}\
.msg{min-width:16em;max-width:32em;overflow-wrap:anywhere}\
.cat{color:#666;font-size:.9em}\
.none{color:#888;font-style:italic}\
.note{color:#555;max-width:60em}\
.ok{color:#1a7f37}.bad{color:#b42318;font-weight:600}\
tr.failing td{background:#fff4f2}\
.alarm{background:#fde8e8;border:2px solid #b42318;color:#7a0f0a;padding:.6em 1em;margin:.6em 0;font-weight:600;max-width:70em}\
.alarm strong{text-transform:uppercase;letter-spacing:.03em}\
";

/// Escapes text for HTML element content and double-quoted attributes, and
/// shows every character that would corrupt the display (see
/// [`is_unsafe_in_label`]: controls, line separators, bidirectional
/// overrides) as `\u{…}`. Log content is attacker-controlled (user names in
/// failed logins), so everything from the outside passes through here.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if is_unsafe_in_label(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// `text` escaped, shortened to `max` characters (an ellipsis ends it) in a
/// span whose `title` holds the whole text when it was shortened. `class`
/// `clip` keeps it on one line (names, ids), `text` lets it wrap (messages).
fn shorten(text: &str, max: usize, class: &str) -> String {
    if text.chars().count() <= max {
        return escape(text);
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!(
        "<span class=\"{class}\" title=\"{}\">{}…</span>",
        escape(text),
        escape(&cut)
    )
}

/// A message: at most [`MESSAGE_CHARS`], wrapping in its cell.
fn short(text: &str, max: usize) -> String {
    shorten(text, max, "text")
}

/// A server id or user name cell's content: shortened, or "(none)".
fn name(text: &str, none: &str) -> String {
    if text.is_empty() {
        format!("<span class=\"none\">{none}</span>")
    } else {
        shorten(text, NAME_CHARS, "clip")
    }
}

/// `2023-11-14T22:13:20Z`.
pub fn utc(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn utc_unix(t: f64) -> String {
    utc((t * 1000.0) as i64)
}

/// `12 s`, `5 min`, `3 h 20 min`, `2 d 4 h`.
pub fn span(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=7_199 => format!("{} min", s / 60),
        7_200..=172_799 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// "12 s ago" with the UTC time on hover; "never" without a time.
fn ago(now: f64, t: Option<f64>) -> String {
    match t {
        Some(t) if t > 0.0 => format!(
            "<span title=\"{} UTC\">{} ago</span>",
            utc_unix(t),
            span(now - t)
        ),
        _ => "<span class=\"none\">never</span>".to_owned(),
    }
}

/// A table in a horizontally scrolling box (ids and timestamps never wrap,
/// so a narrow window scrolls instead).
fn open_table(h: &mut String, class: &str, headers: &[&str]) {
    let _ = write!(
        h,
        "<div class=\"scroll\"><table class=\"{class}\"><thead><tr>"
    );
    for c in headers {
        let _ = write!(h, "<th>{c}</th>");
    }
    h.push_str("</tr></thead><tbody>\n");
}

fn close_table(h: &mut String) {
    h.push_str("</tbody></table></div>\n");
}

/// The HTML id of a cause's summary row: `cause-<category>-<cause>` (a
/// cause name can occur in several categories), `[a-z0-9_]` kept, anything
/// else `-`.
fn anchor(category: &str, cause: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect()
    };
    format!("cause-{}-{}", clean(category), clean(cause))
}

/// Renders the page. `now` is Unix seconds (a parameter for tests).
pub fn render(p: &Page, now: f64) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>AWS Transfer Family Exporter</title><style>{STYLE}</style></head>\n<body>\n\
<h1>AWS Transfer Family Exporter</h1>\n\
<p>Version <span class=\"nw\">{version}</span>, revision <code>{revision}</code>{started} · \
<a href=\"{path}\">Metrics</a> · <a href=\"/-/healthy\">Healthy</a> · <a href=\"/-/ready\">Ready</a> ({ready})</p>\n",
        version = escape(&p.version),
        revision = escape(&p.revision),
        started = p
            .started_unix
            .map(|t| format!(" · started {}", ago(now, Some(t))))
            .unwrap_or_default(),
        path = escape(&p.telemetry_path),
        ready = if p.ready { "yes" } else { "not yet" },
    );
    alarms(&mut h, p);
    causes(&mut h, p);
    recent(&mut h, p);
    apis(&mut h, p, now);
    groups(&mut h, p, now);
    if let Some(push) = &p.push {
        push_receiver(&mut h, push, now);
    }
    targets(&mut h, p);
    h.push_str("</body></html>\n");
    h
}

fn alarms(h: &mut String, p: &Page) {
    if let Some(w) = p
        .push
        .as_ref()
        .and_then(|r| r.unauthenticated_warning.as_ref())
    {
        let _ = writeln!(
            h,
            "<div class=\"alarm\" id=\"alarm-unauthenticated\"><strong>Warning: unauthenticated push receiver.</strong> {}. \
Give it an access key file (<code>--firehose.access-key-file</code>) and remove <code>--firehose.allow-unauthenticated</code>. \
<a href=\"#push\">Push receiver</a></div>",
            escape(w.trim_end_matches('.'))
        );
    }
    let failing: Vec<&ApiRow> = p.apis.iter().filter(|a| a.up == Some(false)).collect();
    if !failing.is_empty() {
        let what: Vec<String> = failing
            .iter()
            .map(|a| {
                let outcome = a.last_error.as_ref().map_or("", |f| f.outcome.as_str());
                format!(
                    "<span class=\"nw\">{} / {} ({})</span>",
                    escape(&a.target),
                    escape(&a.api),
                    escape(outcome)
                )
            })
            .collect();
        let _ = writeln!(
            h,
            "<div class=\"alarm\" id=\"alarm-apis\">AWS API calls failing: {}. Nothing new is read while they fail: \
<a href=\"#aws-apis\">what failed and the fix</a>.</div>",
            what.join(", ")
        );
    }
}

fn causes(h: &mut String, p: &Page) {
    let total: u64 = p.causes.iter().map(|c| c.total).sum();
    let _ = writeln!(
        h,
        "<h2 id=\"causes\">Failures by cause ({total})</h2>\n<p class=\"note\">Classified failures counted since the exporter started{}, \
per cause and server, most frequent first, with what to do. The same failures are in <code>aws_transfer_errors_total</code> \
(and the connector, AS2 and workflow error counters), which also keep earlier runs' counts.</p>",
        p.started_unix
            .map(|t| format!(" ({} UTC)", utc_unix(t)))
            .unwrap_or_default()
    );
    if p.causes.is_empty() {
        h.push_str("<p class=\"none\" id=\"no-failures\">No failures since the start.</p>\n");
        return;
    }
    open_table(
        h,
        "summary",
        &[
            "Cause",
            "Failures",
            "What to do",
            "Server",
            "On this server",
            "Last seen (UTC)",
        ],
    );
    for c in &p.causes {
        let shown = c.servers.len().min(MAX_SERVERS_PER_CAUSE_ON_PAGE);
        let rest = &c.servers[shown..];
        let rows = shown.max(1) + usize::from(!rest.is_empty());
        let lead = format!(
            "<td rowspan=\"{rows}\" class=\"nw\"><strong>{cause}</strong><br><span class=\"cat\">{category}</span></td>\
<td rowspan=\"{rows}\" class=\"num\">{total}</td><td rowspan=\"{rows}\" class=\"advice\">{advice}</td>",
            cause = escape(&c.cause),
            category = escape(&c.category),
            total = c.total,
            advice = escape(&c.advice),
        );
        let id = anchor(&c.category, &c.cause);
        if shown == 0 {
            let _ = writeln!(
                h,
                "<tr id=\"{id}\" class=\"cause\">{lead}<td></td><td></td><td></td></tr>"
            );
        }
        for (i, s) in c.servers[..shown].iter().enumerate() {
            let _ = writeln!(
                h,
                "<tr{attrs}>{lead}<td class=\"id\">{server}</td><td class=\"num\">{count}</td><td class=\"ts\">{last}</td></tr>",
                attrs = if i == 0 {
                    format!(" id=\"{id}\" class=\"cause\"")
                } else {
                    String::new()
                },
                lead = if i == 0 { lead.as_str() } else { "" },
                server = name(&s.server_id, "(none)"),
                count = s.count,
                last = utc(s.last_ms),
            );
        }
        if !rest.is_empty() {
            let n: u64 = rest.iter().map(|s| s.count).sum();
            let last = rest.iter().map(|s| s.last_ms).max().unwrap_or(0);
            let _ = writeln!(
                h,
                "<tr><td class=\"none\">{} more servers</td><td class=\"num\">{n}</td><td class=\"ts\">{}</td></tr>",
                rest.len(),
                utc(last)
            );
        }
    }
    close_table(h);
}

fn recent(h: &mut String, p: &Page) {
    let _ = writeln!(
        h,
        "<h2 id=\"recent\">Recent failures ({})</h2>\n<p class=\"note\">Newest first. Shortened fields show their full text on hover; \
the cause links to its advice above. For an unknown user the name shown is the login name tried, not an account: \
the metrics give such failures no user label.</p>",
        p.failures.len()
    );
    if p.failures.is_empty() {
        h.push_str("<p class=\"none\">None yet.</p>\n");
        return;
    }
    open_table(
        h,
        "recent",
        &["Time (UTC)", "Server", "User", "Cause", "Message"],
    );
    for f in &p.failures {
        let _ = writeln!(
            h,
            "<tr><td class=\"ts\">{time}</td><td class=\"id\" title=\"log group {group}\">{server}</td><td class=\"id\">{user}</td>\
<td class=\"nw\"><a href=\"#{anchor}\">{cause}</a> <span class=\"cat\">{category}</span></td><td class=\"msg\">{message}</td></tr>",
            time = utc(f.timestamp_ms),
            group = escape(&f.log_group),
            server = name(&f.server_id, "(none)"),
            user = name(&f.user, "–"),
            anchor = anchor(&f.category, &f.cause),
            cause = escape(&f.cause),
            category = escape(&f.category),
            message = short(&f.message, MESSAGE_CHARS),
        );
    }
    close_table(h);
}

fn apis(h: &mut String, p: &Page, now: f64) {
    h.push_str(
        "<h2 id=\"aws-apis\">AWS API access</h2>\n<p class=\"note\">Per target, whether each AWS API answers with the exporter's \
credentials, and its last error: what failed, since when, how many calls, and the fix. \
<code>aws_transfer_exporter_target_up</code> says the same.</p>\n",
    );
    if p.apis.is_empty() {
        h.push_str("<p class=\"none\">No AWS API in use yet.</p>\n");
        return;
    }
    open_table(
        h,
        "apis",
        &[
            "Target",
            "API",
            "State",
            "Failed calls",
            "Since (UTC)",
            "Operation",
            "Error",
            "What to do",
        ],
    );
    for a in &p.apis {
        let state = match (a.up, &a.last_error) {
            (None, _) => "<span class=\"none\">not called yet</span>".to_owned(),
            (Some(false), Some(f)) => {
                format!("<span class=\"bad\">failing: {}</span>", escape(&f.outcome))
            }
            (Some(false), None) => "<span class=\"bad\">failing</span>".to_owned(),
            (Some(true), Some(f)) => format!(
                "<span class=\"ok\">up</span>, recovered {}",
                ago(now, f.recovered_unix)
            ),
            (Some(true), None) => "<span class=\"ok\">up</span>".to_owned(),
        };
        let class = if a.up == Some(false) {
            " class=\"failing\""
        } else {
            ""
        };
        let _ = write!(
            h,
            "<tr{class}><td class=\"id\">{}</td><td class=\"nw\">{}</td><td class=\"nw\">{state}</td>",
            escape(&a.target),
            escape(&a.api)
        );
        match &a.last_error {
            Some(f) => {
                let _ = writeln!(
                    h,
                    "<td class=\"num\">{}</td><td class=\"ts\">{}</td><td class=\"nw\">{}</td><td class=\"msg\">{}</td><td class=\"advice\">{}</td></tr>",
                    f.count,
                    utc_unix(f.since_unix),
                    escape(&f.operation),
                    short(&f.message, MESSAGE_CHARS),
                    escape(&f.fix),
                );
            }
            None => h.push_str(
                "<td class=\"num\">0</td><td></td><td></td><td class=\"none\">no error since the start</td><td></td></tr>\n",
            ),
        }
    }
    close_table(h);
}

fn groups(h: &mut String, p: &Page, now: f64) {
    let _ = writeln!(
        h,
        "<h2 id=\"groups\">Log groups ({})</h2>\n<p class=\"note\"><strong>Last successful poll</strong> is poll health: it grows only \
while polling fails. <strong>Newest event seen</strong> is the age of the newest event counted from the group: it grows whenever \
the server is quiet — a quiet server is not falling behind.</p>",
        p.groups.len()
    );
    if p.groups.is_empty() {
        h.push_str("<p class=\"none\">None polled yet.</p>\n");
        return;
    }
    open_table(
        h,
        "groups",
        &[
            "Target",
            "Log group",
            "Last successful poll",
            "Newest event seen",
            "Last poll error",
        ],
    );
    for g in p.groups.iter().take(MAX_GROUPS_ON_PAGE) {
        let newest = g.newest_event_ms.map(|ms| ms as f64 / 1000.0);
        let class = if g.last_error.is_some() {
            " class=\"failing\""
        } else {
            ""
        };
        let _ = writeln!(
            h,
            "<tr{class}><td class=\"id\">{}</td><td class=\"id\">{}</td><td class=\"nw\">{}</td><td class=\"nw\">{}</td><td class=\"msg\">{}</td></tr>",
            escape(&g.target),
            escape(&g.log_group),
            ago(now, g.last_poll_unix),
            match newest {
                Some(_) => ago(now, newest),
                None => "<span class=\"none\">no event yet</span>".to_owned(),
            },
            g.last_error
                .as_deref()
                .map_or_else(String::new, |e| short(e, MESSAGE_CHARS)),
        );
    }
    close_table(h);
    if p.groups.len() > MAX_GROUPS_ON_PAGE {
        let _ = writeln!(
            h,
            "<p>… and {} more (see <code>aws_transfer_exporter_log_group_seconds_since_last_successful_poll</code>).</p>",
            p.groups.len() - MAX_GROUPS_ON_PAGE
        );
    }
}

fn push_receiver(h: &mut String, r: &PushRow, now: f64) {
    h.push_str("<h2 id=\"push\">Push receiver (Amazon Data Firehose)</h2>\n");
    if let Some(w) = &r.unauthenticated_warning {
        let _ = writeln!(
            h,
            "<div class=\"alarm\"><strong>Unauthenticated:</strong> {}</div>",
            escape(w)
        );
    }
    let last_request = match r.last_request_unix {
        Some(t) => format!(
            "{}{}",
            ago(now, Some(t)),
            r.last_outcome
                .as_deref()
                .map(|o| {
                    let class = if o == "ok" { "ok" } else { "bad" };
                    format!(", <span class=\"{class}\">{}</span>", escape(o))
                })
                .unwrap_or_default()
        ),
        None => "<span class=\"none\">none yet</span>".to_owned(),
    };
    let last_error = match &r.last_error {
        Some((t, msg)) => format!("{}: {}", ago(now, Some(*t)), short(msg, MESSAGE_CHARS)),
        None => "<span class=\"none\">none</span>".to_owned(),
    };
    let requests: Vec<String> = r
        .requests
        .iter()
        .map(|(o, n)| format!("<span class=\"nw\">{} {n}</span>", escape(o)))
        .collect();
    let _ = writeln!(
        h,
        "<div class=\"scroll\"><table class=\"push\"><tbody>\
<tr><th>Listening on</th><td class=\"id\">{addr} (POST {path})</td></tr>\
<tr><th>Access key</th><td>{auth}</td></tr>\
<tr><th>Last request</th><td>{last_request}</td></tr>\
<tr><th>Last error</th><td>{last_error}</td></tr>\
<tr><th>Requests since the start</th><td>{requests}</td></tr>\
</tbody></table></div>",
        addr = escape(&r.listen_address),
        path = escape(&r.path),
        auth = if r.unauthenticated_warning.is_some() {
            "<span class=\"bad\">NOT REQUIRED</span>"
        } else {
            "required"
        },
        requests = requests.join(" · "),
    );
}

fn targets(h: &mut String, p: &Page) {
    h.push_str("<h2 id=\"targets\">Targets</h2>\n");
    open_table(h, "targets", &["Name", "Region", "Endpoint", "Role"]);
    for t in &p.targets {
        let _ = writeln!(
            h,
            "<tr><td class=\"id\">{}</td><td class=\"id\">{}</td><td class=\"id\">{}</td><td class=\"id\">{}</td></tr>",
            escape(&t.name),
            escape(&t.region),
            escape(t.endpoint_url.as_deref().unwrap_or("AWS default")),
            escape(t.role_arn.as_deref().unwrap_or("")),
        );
    }
    close_table(h);
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_764_000_000.0;
    const EVIL: &str = "<script>alert(1)</script>\"'&<img src=x onerror=alert(2)>";

    /// Rows of the table with `class`, each as its cells' inner HTML.
    fn rows(page: &str, class: &str) -> Vec<Vec<String>> {
        let start = page
            .find(&format!("<table class=\"{class}\">"))
            .unwrap_or_else(|| panic!("no table {class}"));
        let end = start + page[start..].find("</table>").expect("table closed");
        page[start..end]
            .split("<tr")
            .skip(2) // before the first row, the header row
            .map(|row| {
                row.split("<td")
                    .skip(1)
                    .map(|cell| {
                        let inner = &cell[cell.find('>').expect("cell opens") + 1..];
                        inner[..inner.find("</td>").expect("cell closed")].to_owned()
                    })
                    .collect()
            })
            .collect()
    }

    fn count(page: &str, needle: &str) -> usize {
        page.matches(needle).count()
    }

    /// Many causes, a cause on more servers than the page lists, long user
    /// names and fingerprints, control characters and markup in every field
    /// that comes from outside.
    pub(super) fn busy() -> Page {
        let long_user = format!("{}\u{0}\n\u{1b}[31m\u{202e}{}", "u".repeat(150), EVIL);
        let fingerprint = format!(
            "Authentication failure: key SHA256:{} does not match {EVIL}",
            "Qm9ndXNGaW5nZXJwcmludEJvZ3VzRmluZ2VycHJpbnQ".repeat(4)
        );
        let mut causes = Vec::new();
        for i in 0..30u64 {
            let servers = if i == 0 { 14 } else { 1 + i % 3 };
            causes.push(CauseRow {
                category: if i % 2 == 0 { "auth" } else { "transfer" }.into(),
                cause: format!("cause_{i:02}"),
                advice: format!("advice for cause {i}: check the key & the user {EVIL}"),
                total: (0..servers).map(|s| 100 - i - s).sum(),
                servers: (0..servers)
                    .map(|s| CauseServerRow {
                        server_id: if s == 1 {
                            format!("s-{EVIL}")
                        } else {
                            format!("s-{i:02}{s:015x}")
                        },
                        count: 100 - i - s,
                        last_ms: 1_763_999_000_000 + s as i64,
                    })
                    .collect(),
            });
        }
        causes[29].servers[0].server_id.clear();
        let failures = (0..60)
            .map(|i| FailureRow {
                timestamp_ms: 1_763_999_999_000 - i * 1000,
                log_group: format!("/aws/transfer/{EVIL}"),
                server_id: format!("s-{i:017x}"),
                user: if i % 2 == 0 {
                    long_user.clone()
                } else {
                    String::new()
                },
                category: if i % 2 == 0 { "auth" } else { "transfer" }.into(),
                cause: format!("cause_{:02}", i % 30),
                advice: "advice".into(),
                message: fingerprint.clone(),
            })
            .collect();
        Page {
            telemetry_path: "/metrics".into(),
            version: "0.1.0".into(),
            revision: "abc1234".into(),
            ready: true,
            started_unix: Some(NOW - 3600.0),
            targets: vec![TargetRow {
                name: format!("prod{EVIL}"),
                region: "eu-west-1".into(),
                endpoint_url: Some(format!("http://127.0.0.1:1/{EVIL}")),
                role_arn: Some("arn:aws:iam::111122223333:role/aws-transfer-exporter-read-only-role-with-a-long-name".into()),
            }],
            causes,
            failures,
            apis: vec![
                ApiRow {
                    target: "prod".into(),
                    api: "logs".into(),
                    up: Some(false),
                    last_error: Some(ApiFailureRow {
                        operation: "DescribeLogGroups".into(),
                        outcome: "credentials".into(),
                        message: format!("no credentials found in chain {EVIL}"),
                        fix: "no AWS credentials found: set AWS_PROFILE, or attach a role".into(),
                        since_unix: NOW - 42.0,
                        count: 7,
                        recovered_unix: None,
                    }),
                },
                ApiRow {
                    target: "prod".into(),
                    api: "transfer".into(),
                    up: Some(true),
                    last_error: None,
                },
            ],
            groups: vec![GroupRow {
                target: "prod".into(),
                log_group: format!("/aws/transfer/{EVIL}"),
                last_poll_unix: Some(NOW - 5.0),
                newest_event_ms: Some(((NOW - 900.0) * 1000.0) as i64),
                last_error: Some(format!("throttled {EVIL}")),
            }],
            push: Some(PushRow {
                listen_address: "127.0.0.1:8080".into(),
                path: "/firehose".into(),
                last_request_unix: Some(NOW - 3.0),
                last_outcome: Some("unauthorized".into()),
                last_error: Some((NOW - 3.0, format!("bad {EVIL}"))),
                requests: vec![("ok".into(), 12), ("unauthorized".into(), 1)],
                unauthenticated_warning: Some("accepts requests WITHOUT an access key".into()),
            }),
        }
    }

    #[test]
    fn summary_comes_first_and_counts_every_cause_and_server() {
        let p = busy();
        let page = render(&p, NOW);
        let at = |needle: &str| page.find(needle).unwrap_or_else(|| panic!("no {needle}"));
        // Alarms, then the summary, then the recent failures, then the rest.
        assert!(at("id=\"alarm-unauthenticated\"") < at("id=\"causes\""));
        assert!(at("id=\"alarm-apis\"") < at("id=\"causes\""));
        assert!(at("id=\"causes\"") < at("id=\"recent\""));
        assert!(at("id=\"recent\"") < at("id=\"aws-apis\""));
        assert!(at("id=\"aws-apis\"") < at("id=\"groups\""));
        let total: u64 = p.causes.iter().map(|c| c.total).sum();
        assert!(page.contains(&format!("Failures by cause ({total})")));

        // One block of rows per cause, in the given order: the first row
        // carries the cause, its total and the advice (spanning the
        // server rows), every row a server and its count.
        let rows = rows(&page, "summary");
        let mut i = 0;
        for c in &p.causes {
            let first = &rows[i];
            assert!(
                first[0].contains(&format!("<strong>{}</strong>", c.cause)),
                "{first:?}"
            );
            assert_eq!(first[1], c.total.to_string(), "{}", c.cause);
            assert_eq!(first[2], escape(&c.advice));
            let listed = c.servers.len().min(MAX_SERVERS_PER_CAUSE_ON_PAGE);
            for (k, s) in c.servers[..listed].iter().enumerate() {
                let cells = &rows[i + k];
                let cells = &cells[cells.len() - 3..];
                if s.server_id.is_empty() {
                    assert!(cells[0].contains("(none)"), "{cells:?}");
                } else if s.server_id.chars().count() <= NAME_CHARS {
                    assert_eq!(cells[0], escape(&s.server_id));
                } else {
                    let title = format!("title=\"{}\"", escape(&s.server_id));
                    assert!(cells[0].contains(&title), "{cells:?}");
                }
                assert_eq!(cells[1], s.count.to_string());
                assert_eq!(cells[2], utc(s.last_ms));
            }
            i += listed;
            if c.servers.len() > listed {
                let rest = &c.servers[listed..];
                let more = &rows[i];
                assert!(more[0].contains(&format!("{} more servers", rest.len())));
                assert_eq!(
                    more[1],
                    rest.iter().map(|s| s.count).sum::<u64>().to_string()
                );
                i += 1;
            }
        }
        assert_eq!(i, rows.len());
        // The cause's rows span exactly its block.
        assert!(
            page.contains("rowspan=\"11\""),
            "14 servers: 10 listed and one more line"
        );
        // Recent failures link to their cause's advice.
        assert!(page.contains("<a href=\"#cause-transfer-cause_07\">cause_07</a>"));
        assert!(page.contains("id=\"cause-transfer-cause_07\""));
    }

    #[test]
    fn long_fields_are_shortened_with_the_full_text_on_hover() {
        let p = busy();
        let page = render(&p, NOW);
        let message = &p.failures[0].message;
        let user = &p.failures[0].user;
        assert!(message.chars().count() > MESSAGE_CHARS);
        // The full text, escaped, in a title; the cell shows a prefix.
        let title = format!("title=\"{}\"", escape(message));
        assert!(page.contains(&title), "full message in a title");
        let shown: String = message.chars().take(MESSAGE_CHARS - 1).collect();
        assert!(page.contains(&format!("{}…</span>", escape(&shown))));
        assert!(page.contains(&format!(
            "<span class=\"text\" title=\"{}\"",
            escape(message)
        )));
        assert!(page.contains(&format!("title=\"{}\"", escape(user))));
        let shown: String = user.chars().take(NAME_CHARS - 1).collect();
        assert!(page.contains(&format!("{}…</span>", escape(&shown))));
        // Each recent-failure row: time, server, user, cause, message; the
        // message never takes more than its shortened length.
        for row in rows(&page, "recent") {
            assert_eq!(row.len(), 5, "{row:?}");
            assert!(row[0].len() == 20 && row[0].ends_with('Z'), "{row:?}");
            let visible = row[4]
                .rsplit_once("\">")
                .map_or(row[4].as_str(), |(_, v)| v);
            assert!(visible.chars().count() < 2 * MESSAGE_CHARS, "{row:?}");
        }
        // Ids and timestamps never wrap; the advice column has room.
        assert!(page.contains(".nw,.id,.ts,.num{white-space:nowrap}"));
        assert!(page.contains("<td class=\"ts\">"));
        assert!(page.contains(".advice{min-width:22em"));
        assert!(page.contains("overflow-x:auto"));
    }

    #[test]
    fn everything_from_outside_is_escaped_and_controls_are_visible() {
        let page = render(&busy(), NOW);
        // No markup from the input survives; only the page's own tags.
        assert!(!page.contains("<script"), "script tag");
        assert!(!page.contains("<img"), "img tag");
        assert!(!page.contains("onerror=alert(2)>"), "attribute break-out");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"));
        // No control character but the page's own newlines, no bidi override.
        for c in page.chars() {
            assert!(
                c == '\n' || !is_unsafe_in_label(c),
                "raw {:?} in the page",
                c
            );
        }
        assert!(
            page.contains(r"\u{0}\u{a}\u{1b}[31m\u{202e}"),
            "controls shown"
        );
        // Well formed enough: every opened element of these kinds is closed.
        for tag in ["tr", "td", "th", "table", "div", "span", "p", "h2"] {
            let open = count(&page, &format!("<{tag}>")) + count(&page, &format!("<{tag} "));
            let close = count(&page, &format!("</{tag}>"));
            assert_eq!(open, close, "<{tag}>");
        }
        // Attribute values are quoted and contain no raw quote.
        for attr in page.split("title=\"").skip(1) {
            let value = &attr[..attr.find('"').expect("title closed")];
            assert!(!value.contains('<') && !value.contains('>'), "{value}");
        }
    }

    #[test]
    fn apis_push_and_groups_say_what_failed_and_what_lag_means() {
        let page = render(&busy(), NOW);
        let apis = rows(&page, "apis");
        assert_eq!(apis.len(), 2);
        let logs = &apis[0];
        assert!(logs[2].contains("failing: credentials"), "{logs:?}");
        assert_eq!(logs[3], "7");
        assert_eq!(logs[4], utc_unix(NOW - 42.0));
        assert_eq!(logs[5], "DescribeLogGroups");
        assert!(logs[7].contains("no AWS credentials found"), "{logs:?}");
        assert!(apis[1][2].contains("up"), "{:?}", apis[1]);
        assert!(page.contains(
            "AWS API calls failing: <span class=\"nw\">prod / logs (credentials)</span>"
        ));

        let groups = rows(&page, "groups");
        assert!(groups[0][2].contains("5 s ago"), "{:?}", groups[0]);
        assert!(groups[0][3].contains("15 min ago"), "{:?}", groups[0]);
        assert!(page.contains("a quiet server is not falling behind"));

        let push = &page[page.find("id=\"push\"").unwrap()..];
        assert!(push.contains("127.0.0.1:8080 (POST /firehose)"));
        assert!(push.contains("3 s ago</span>, <span class=\"bad\">unauthorized</span>"));
        assert!(push.contains("bad &lt;script&gt;"));
        assert!(push.contains("NOT REQUIRED"));
        assert!(push.contains("ok 12"));
        assert!(page.contains("revision <code>abc1234</code>"));
    }

    #[test]
    fn a_quiet_start_says_so() {
        let page = render(
            &Page {
                telemetry_path: "/metrics".into(),
                ..Page::default()
            },
            NOW,
        );
        assert!(page.contains("No failures since the start."));
        assert!(!page.contains("class=\"alarm\""));
        assert!(!page.contains("id=\"push\""), "no receiver, no section");
    }

    #[test]
    fn spans_read_naturally() {
        for (s, want) in [
            (0.4, "0 s"),
            (119.0, "119 s"),
            (120.0, "2 min"),
            (7_199.0, "119 min"),
            (7_260.0, "2 h 1 min"),
            (200_000.0, "2 d 7 h"),
            (-5.0, "0 s"),
        ] {
            assert_eq!(span(s), want, "{s}");
        }
    }
}
