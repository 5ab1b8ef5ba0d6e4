//! parse → attribute → classify → count, shared by the `classify` command and
//! the daemon, so what the command prints is exactly what the daemon counts.
//!
//! [`Pipeline::process`] never panics and never drops an event silently:
//! every input is either counted in the product metrics or in
//! `aws_transfer_exporter_unparsed_events_total` (and sampled to the log).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use serde::{Deserialize, Serialize};

use crate::attribute::{self, Attributor};
use crate::classify::{self, Classification};
use crate::event::{Activity, Format, Parsed, RawEvent, ServerEvent};
use crate::metrics::Metrics;
use crate::parse;

/// Default number of recent failures kept for the landing page.
pub const DEFAULT_RECENT_FAILURES: usize = 50;

/// At most this many unparseable messages are logged per minute; the rest
/// are only counted. Enough to diagnose, too few to flood the log.
const UNPARSED_SAMPLES_PER_MINUTE: u32 = 5;

/// Logged messages are cut to this many bytes.
const SAMPLE_BYTES: usize = 300;

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub session_cache_size: usize,
    pub session_ttl: Duration,
    pub recent_failures: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            session_cache_size: attribute::DEFAULT_SESSION_CACHE_SIZE,
            session_ttl: attribute::DEFAULT_SESSION_TTL,
            recent_failures: DEFAULT_RECENT_FAILURES,
        }
    }
}

/// The last CONNECTED of a user, persisted in the state file so a restart
/// does not reset the silent-partner gauge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastSession {
    pub server_id: String,
    pub user: String,
    pub timestamp_seconds: f64,
}

/// What the pipeline made of one event (one JSON line of `classify --output jsonl`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub event_id: String,
    pub timestamp_ms: i64,
    pub log_group: String,
    pub log_stream: String,
    pub format: Option<Format>,
    /// Server id, or connector id for connector lines, or the AS2 resource.
    pub server_id: Option<String>,
    /// The attributed user as seen in the log (not the bounded label value).
    pub user: Option<String>,
    /// Activity type, or connector operation / AS2 status / workflow type.
    pub activity: Option<String>,
    pub category: Option<&'static str>,
    pub cause: Option<String>,
    pub advice: Option<&'static str>,
    /// The event's own message (server events) or failure message.
    pub message: Option<String>,
    /// Why the message could not be parsed; only then set (and only then
    /// present in JSON output).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_error: Option<String>,
}

/// Cached counter handles keyed by label values: `with_label_values` hashes
/// and locks on every call, which dominated the per-event cost.
#[derive(Default)]
struct Handles {
    events: HashMap<(String, String), IntCounter>,
}

pub struct Pipeline {
    metrics: Arc<Metrics>,
    attributor: Attributor,
    recent: VecDeque<Outcome>,
    recent_cap: usize,
    servers_seen: HashSet<String>,
    last_sessions: HashMap<(String, String), f64>,
    handles: Handles,
    sample_window: Instant,
    samples_in_window: u32,
}

impl Pipeline {
    pub fn new(metrics: Arc<Metrics>, cfg: PipelineConfig) -> Pipeline {
        Pipeline {
            metrics,
            attributor: Attributor::new(cfg.session_cache_size, cfg.session_ttl),
            recent: VecDeque::with_capacity(cfg.recent_failures.min(1024)),
            recent_cap: cfg.recent_failures,
            servers_seen: HashSet::new(),
            last_sessions: HashMap::new(),
            handles: Handles::default(),
            sample_window: Instant::now(),
            samples_in_window: 0,
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Recent classified failures, newest first (bounded).
    pub fn recent_failures(&self) -> Vec<Outcome> {
        self.recent.iter().rev().cloned().collect()
    }

    /// Last CONNECTED per (server, user label), for the state file.
    pub fn last_sessions(&self) -> Vec<LastSession> {
        let mut v: Vec<LastSession> = self
            .last_sessions
            .iter()
            .map(|((server_id, user), ts)| LastSession {
                server_id: server_id.clone(),
                user: user.clone(),
                timestamp_seconds: *ts,
            })
            .collect();
        v.sort_by(|a, b| (&a.server_id, &a.user).cmp(&(&b.server_id, &b.user)));
        v
    }

    /// Restores the silent-partner gauge after a restart. Newer values win,
    /// and restored users pass through the same label cap.
    pub fn restore_last_sessions(&mut self, v: &[LastSession]) {
        for s in v {
            let server = self.metrics.id_label("server_id", &s.server_id);
            let user = self.metrics.user_label(&server, &s.user);
            self.note_session(server, user, s.timestamp_seconds);
        }
    }

    fn note_session(&mut self, server: String, user: String, ts: f64) {
        let entry = self
            .last_sessions
            .entry((server.clone(), user.clone()))
            .or_insert(f64::MIN);
        if ts > *entry {
            *entry = ts;
            self.metrics
                .user_last_session
                .with_label_values(&[&server, &user])
                .set(ts);
        }
    }

    /// Runs one event through parse → attribute → classify → count.
    pub fn process(&mut self, raw: &RawEvent) -> Outcome {
        let mut out = Outcome {
            event_id: raw.event_id.clone(),
            timestamp_ms: raw.timestamp_ms,
            log_group: raw.log_group.clone(),
            log_stream: raw.log_stream.clone(),
            ..Default::default()
        };
        match parse::parse(&raw.message) {
            Ok(parsed) => {
                out.format = Some(parsed.format());
                match parsed {
                    Parsed::Server { event, .. } => self.server(raw, event, &mut out),
                    Parsed::Connector(ev) => self.connector(ev, &mut out),
                    Parsed::ConnectorThrottled { connector_id } => {
                        let cid = connector_id.or_else(|| attribute::server_from_group(&raw.log_group).map(str::to_owned));
                        let label = self.metrics.id_label("connector_id", cid.as_deref().unwrap_or(""));
                        let c = classify::connector_throttled();
                        self.metrics.connector_errors.with_label_values(&[&label, c.cause]).inc();
                        out.server_id = cid;
                        out.activity = Some("ExecutionThrottled".into());
                        self.set_class(&mut out, c);
                    }
                    Parsed::As2(ev) => self.as2(raw, ev, &mut out),
                    Parsed::Workflow(ev) => self.workflow(ev, &mut out),
                }
            }
            Err(e) => {
                let family = parse::family(&raw.message);
                self.metrics.unparsed_events.with_label_values(&[family, e.as_str()]).inc();
                out.parse_error = Some(e.as_str().to_owned());
                self.sample_unparsed(raw, e.as_str());
            }
        }
        out
    }

    fn set_class(&mut self, out: &mut Outcome, c: Classification) {
        out.category = Some(c.category);
        out.cause = Some(c.cause.to_owned());
        out.advice = Some(c.advice);
        if self.recent_cap > 0 {
            if self.recent.len() == self.recent_cap {
                self.recent.pop_front();
            }
            self.recent.push_back(out.clone());
        }
    }

    fn sample_unparsed(&mut self, raw: &RawEvent, reason: &str) {
        if self.sample_window.elapsed() >= Duration::from_secs(60) {
            if self.samples_in_window > UNPARSED_SAMPLES_PER_MINUTE {
                tracing::warn!(
                    suppressed = self.samples_in_window - UNPARSED_SAMPLES_PER_MINUTE,
                    "more unparseable messages were counted but not logged"
                );
            }
            self.sample_window = Instant::now();
            self.samples_in_window = 0;
        }
        self.samples_in_window += 1;
        if self.samples_in_window <= UNPARSED_SAMPLES_PER_MINUTE {
            let mut end = raw.message.len().min(SAMPLE_BYTES);
            while !raw.message.is_char_boundary(end) {
                end -= 1;
            }
            tracing::warn!(
                reason,
                log_group = %raw.log_group,
                log_stream = %raw.log_stream,
                event_id = %raw.event_id,
                sample = &raw.message[..end],
                "unparseable log message counted and skipped"
            );
        }
    }

    fn server(&mut self, raw: &RawEvent, ev: ServerEvent, out: &mut Outcome) {
        let at = self.attributor.attribute(&ev, raw);
        let server_raw = at.server_id.as_deref().unwrap_or("");
        let server = self.metrics.id_label("server_id", server_raw);
        if !self.servers_seen.contains(server_raw) && !server_raw.is_empty() {
            self.servers_seen.insert(server_raw.to_owned());
            if let (Some(region), Some(account)) = (ev.region.as_deref(), ev.account_id.as_deref()) {
                self.metrics.ensure_server_info(&server, region, account);
            }
        }
        let activity = ev.activity.clone().unwrap_or(Activity::Other(String::new()));
        let activity_label = match &activity {
            Activity::Other(name) => {
                let valid = !name.is_empty()
                    && name.len() <= 64
                    && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
                if valid {
                    self.metrics.id_label("activity", name)
                } else {
                    crate::metrics::OVERFLOW_LABEL.to_owned()
                }
            }
            known => known.as_str().to_owned(),
        };
        let key = (server.clone(), activity_label);
        match self.handles.events.get(&key) {
            Some(c) => c.inc(),
            None => {
                let c = self.metrics.events.with_label_values(&[&key.0, &key.1]);
                c.inc();
                self.handles.events.insert(key, c);
            }
        }

        let expects_user = !matches!(
            activity,
            Activity::KexFailure | Activity::ConnectionRejected | Activity::TlsResumeFailure
        );
        if at.user.is_none() && expects_user {
            self.metrics.unattributed_events.with_label_values(&[&server]).inc();
        }
        let user_raw = at.user.as_deref().unwrap_or("");
        let class = classify::server(&ev);

        // The user label: strangers' names never become labels. A name from
        // an AUTH_FAILURE is used only for key_mismatch (AWS logs a key
        // fingerprint only when the user exists) or when the name is already
        // known on this server from a trusted source (CONNECTED, streams).
        let user_label = if activity == Activity::AuthFailure {
            match class.map(|c| c.cause) {
                Some("key_mismatch") => self.metrics.user_label(&server, user_raw),
                _ => {
                    if self.metrics.with_guard(|g| g.is_admitted(&server, user_raw)) {
                        user_raw.to_owned()
                    } else {
                        String::new()
                    }
                }
            }
        } else {
            self.metrics.user_label(&server, user_raw)
        };

        match activity {
            Activity::Connected => {
                self.metrics.sessions.with_label_values(&[&server, &user_label]).inc();
                let ts = raw.timestamp_ms as f64 / 1000.0;
                self.note_session(server.clone(), user_label.clone(), ts);
            }
            Activity::Close | Activity::PartialClose => {
                let mut any = false;
                for (dir, n) in [("upload", ev.bytes_in), ("download", ev.bytes_out)] {
                    if let Some(n) = n {
                        any = true;
                        self.metrics.files.with_label_values(&[&server, &user_label, dir]).inc();
                        self.metrics.bytes.with_label_values(&[&server, &user_label, dir]).inc_by(n);
                    }
                }
                if !any {
                    self.metrics.files.with_label_values(&[&server, &user_label, "unknown"]).inc();
                }
            }
            _ => {}
        }
        out.server_id = at.server_id.clone();
        out.user = at.user.clone();
        out.activity = Some(ev.activity.as_ref().map(|a| a.as_str().to_owned()).unwrap_or_default());
        out.message = ev.message.clone();
        if let Some(c) = class {
            self.metrics
                .errors
                .with_label_values(&[&server, &user_label, c.category, c.cause])
                .inc();
            self.set_class(out, c);
        }
    }

    fn connector(&mut self, ev: crate::event::ConnectorEvent, out: &mut Outcome) {
        let cid = ev.connector_id.as_deref().unwrap_or("");
        let label = self.metrics.id_label("connector_id", cid);
        let operation = bounded_word(ev.operation.as_deref());
        let status = bounded_word(ev.status_code.as_deref());
        self.metrics
            .connector_transfers
            .with_label_values(&[&label, &operation, &status])
            .inc();
        if status == "COMPLETED" {
            if let Some(b) = ev.bytes {
                self.metrics.connector_bytes.with_label_values(&[&label, &operation]).inc_by(b);
            }
        }
        out.server_id = ev.connector_id.clone();
        out.activity = Some(format!("{operation} {status}"));
        out.message = ev.failure_message.clone();
        if let Some(c) = classify::connector(&ev) {
            self.metrics.connector_errors.with_label_values(&[&label, c.cause]).inc();
            self.set_class(out, c);
        }
    }

    fn as2(&mut self, raw: &RawEvent, ev: crate::event::As2Event, out: &mut Outcome) {
        let (resource, direction) = match (&ev.server_id, &ev.connector_id) {
            (Some(s), _) => (s.clone(), "inbound"),
            (None, Some(c)) => (c.clone(), "outbound"),
            (None, None) => (
                attribute::server_from_group(&raw.log_group).unwrap_or("").to_owned(),
                "unknown",
            ),
        };
        let status = bounded_word(ev.status_code.as_deref());
        out.server_id = Some(resource.clone()).filter(|r| !r.is_empty());
        out.activity = Some(status.clone());
        out.message = ev.failure_message.clone();
        // Only final states count (PROCESSING, MDN_* are intermediate).
        if status != "COMPLETED" && status != "FAILED" {
            return;
        }
        let label = self.metrics.id_label("resource_id", &resource);
        self.metrics.as2_messages.with_label_values(&[&label, direction, &status]).inc();
        if let Some(c) = classify::as2(&ev) {
            self.metrics.as2_errors.with_label_values(&[&label, direction, c.cause]).inc();
            self.set_class(out, c);
        }
    }

    fn workflow(&mut self, ev: crate::event::WorkflowEvent, out: &mut Outcome) {
        let wid = self.metrics.id_label("workflow_id", ev.workflow_id.as_deref().unwrap_or(""));
        let status = match ev.kind.as_str() {
            "ExecutionCompleted" => Some("completed"),
            "ExecutionErrored" => Some("errored"),
            "ExecutionThrottled" => Some("throttled"),
            _ => None,
        };
        if let Some(status) = status {
            self.metrics.workflow_executions.with_label_values(&[&wid, status]).inc();
        }
        out.server_id = ev.server_id.clone();
        out.user = ev.user.clone();
        out.activity = Some(ev.kind.clone());
        out.message = ev.error_message.clone();
        if let Some(c) = classify::workflow(&ev) {
            let server = self.metrics.id_label("server_id", ev.server_id.as_deref().unwrap_or(""));
            let user = self.metrics.user_label(&server, ev.user.as_deref().unwrap_or(""));
            self.metrics
                .errors
                .with_label_values(&[&server, &user, c.category, c.cause])
                .inc();
            self.set_class(out, c);
        }
    }
}

/// An upper-case status/operation word kept as a label, or `other` when it
/// does not look like one (AWS writes these, but the set is open).
fn bounded_word(s: Option<&str>) -> String {
    match s {
        Some(w)
            if !w.is_empty()
                && w.len() <= 32
                && w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            w.to_ascii_uppercase()
        }
        Some(_) => "other".to_owned(),
        None => String::new(),
    }
}
