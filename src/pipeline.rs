//! parse → attribute → classify → count, shared by the `classify` command and
//! the daemon, so what the command prints is exactly what the daemon counts.
//!
//! [`Pipeline::process`] never panics and never drops an event silently:
//! every input is either counted in the product metrics or in
//! `aws_transfer_exporter_unparsed_events_total` (and sampled to the log).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metrics::IntCounter;
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::attribute::{self, Attributor};
use crate::classify::{self, Classification};
use crate::event::{Activity, Format, Parsed, RawEvent, ServerEvent};
use crate::metrics::Metrics;
use crate::parse;
use crate::state::LastSession;

pub use crate::config::defaults::DEFAULT_RECENT_FAILURES;

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

/// What the pipeline made of one event (one JSON line of `classify --output jsonl`).
///
/// Borrows from the [`RawEvent`] wherever it can, so that producing it costs
/// (almost) no allocation on the daemon's hot path, which discards it; the
/// landing page's recent failures keep an owned copy
/// ([`Outcome::to_static`]).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome<'a> {
    pub event_id: Cow<'a, str>,
    pub timestamp_ms: i64,
    pub log_group: Cow<'a, str>,
    pub log_stream: Cow<'a, str>,
    pub format: Option<Format>,
    /// Server id, or connector id for connector lines, or the AS2 resource.
    pub server_id: Option<Cow<'a, str>>,
    /// The attributed user as seen in the log (not the bounded label value).
    pub user: Option<Cow<'a, str>>,
    /// Activity type, or connector operation / AS2 status / workflow type.
    pub activity: Option<Cow<'a, str>>,
    pub category: Option<&'static str>,
    pub cause: Option<&'static str>,
    pub advice: Option<&'static str>,
    /// The event's own message (server events) or failure message.
    pub message: Option<Cow<'a, str>>,
    /// Why the message could not be parsed; only then set (and only then
    /// present in JSON output).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_error: Option<&'static str>,
}

impl Outcome<'_> {
    /// Copies `self` into `dst`, reusing `dst`'s string buffers: the recent
    /// failures ring recycles its oldest entry this way, so keeping it costs
    /// no allocation in the steady state.
    pub fn copy_into(&self, dst: &mut Outcome<'static>) {
        fn text(dst: &mut Cow<'static, str>, src: &str) {
            match dst {
                Cow::Owned(s) => {
                    s.clear();
                    s.push_str(src);
                }
                Cow::Borrowed(_) => *dst = Cow::Owned(src.to_owned()),
            }
        }
        fn opt(dst: &mut Option<Cow<'static, str>>, src: &Option<Cow<'_, str>>) {
            match (dst.as_mut(), src) {
                (Some(d), Some(s)) => text(d, s),
                (_, None) => *dst = None,
                (None, Some(s)) => *dst = Some(Cow::Owned(s.to_string())),
            }
        }
        // Destructured, so a new field cannot be forgotten here.
        let Outcome {
            event_id,
            timestamp_ms,
            log_group,
            log_stream,
            format,
            server_id,
            user,
            activity,
            category,
            cause,
            advice,
            message,
            parse_error,
        } = self;
        text(&mut dst.event_id, event_id);
        dst.timestamp_ms = *timestamp_ms;
        text(&mut dst.log_group, log_group);
        text(&mut dst.log_stream, log_stream);
        dst.format = *format;
        opt(&mut dst.server_id, server_id);
        opt(&mut dst.user, user);
        opt(&mut dst.activity, activity);
        dst.category = *category;
        dst.cause = *cause;
        dst.advice = *advice;
        opt(&mut dst.message, message);
        dst.parse_error = *parse_error;
    }

    /// A copy that owns its text (for keeping beyond the raw event).
    pub fn to_static(&self) -> Outcome<'static> {
        let mut owned = Outcome::default();
        self.copy_into(&mut owned);
        owned
    }
}

/// Counter handles cached by label values, for the series [`Slots`] does
/// not hold. `IntCounterVec::with_label_values` hashes every value and
/// takes a lock on every call; here a hit costs copying the values into
/// one reused buffer, one FxHash of it and one compare, and allocates
/// nothing. The key is the values joined by the byte 0xFF, which never
/// occurs in UTF-8, so distinct value lists have distinct keys. Bounded
/// because every label value passed in is already bounded by the label
/// guard.
struct CounterCache {
    vec: crate::metrics::IntCounterVec,
    map: FxHashMap<Box<[u8]>, IntCounter>,
    key: Vec<u8>,
}

impl CounterCache {
    fn new(vec: &crate::metrics::IntCounterVec) -> CounterCache {
        CounterCache {
            vec: vec.clone(),
            map: FxHashMap::default(),
            key: Vec::new(),
        }
    }

    fn get(&mut self, values: &[&str]) -> &IntCounter {
        self.key.clear();
        for v in values {
            self.key.extend_from_slice(v.as_bytes());
            self.key.push(0xff);
        }
        if !self.map.contains_key(self.key.as_slice()) {
            let c = self.vec.with_label_values(values);
            self.map.insert(self.key.as_slice().into(), c);
        }
        &self.map[self.key.as_slice()]
    }
}

/// The string-keyed cache for the rare series the label slots do not
/// hold (server events of an activity this exporter does not know).
struct Handles {
    events: CounterCache,
}

impl Handles {
    fn new(m: &Metrics) -> Handles {
        Handles {
            events: CounterCache::new(&m.events),
        }
    }
}

/// Whether the guard handed back `raw` itself (admitted, nothing cleaned).
fn unchanged(label: &str, raw: &str) -> bool {
    // A cleaned or overflow value is another string: only `raw` itself
    // starts at `raw`'s address.
    std::ptr::eq(label.as_ptr(), raw.as_ptr()) && label.len() == raw.len()
}

/// Counter handles of one user label on one server (see [`Slots`]).
struct UserSlot {
    /// The label value.
    label: Box<str>,
    /// The guard handed back `label` itself when asked for a raw name
    /// equal to it, so that raw name needs no guard (see [`Slots`]).
    admitted: bool,
    sessions: Option<IntCounter>,
    /// By direction: upload, download, unknown.
    files: [Option<IntCounter>; 3],
    /// By direction: upload, download.
    bytes: [Option<IntCounter>; 2],
    /// By (category, cause): the classifier's static strings, told apart
    /// by address (a few per user; two addresses of one text only make two
    /// handles on the same series).
    errors: Vec<(&'static str, &'static str, IntCounter)>,
    /// Last CONNECTED time and its gauge series once set (for the state
    /// file and the silent-partner gauge); `None` until a CONNECTED.
    last_session: Option<(f64, Option<prometheus::Gauge>)>,
}

impl UserSlot {
    fn new(label: &str) -> UserSlot {
        UserSlot {
            label: label.into(),
            admitted: false,
            sessions: None,
            files: Default::default(),
            bytes: Default::default(),
            errors: Vec::new(),
            last_session: None,
        }
    }
}

/// Counter handles of one server label (see [`Slots`]).
struct ServerSlot {
    label: Box<str>,
    /// As [`UserSlot::admitted`].
    admitted: bool,
    /// `aws_transfer_server_info` was ensured (at the first event naming
    /// the server).
    info_checked: bool,
    /// By [`Activity::index`].
    events: [Option<IntCounter>; Activity::KNOWN.len()],
    unattributed: Option<IntCounter>,
    /// User label -> index into [`Slots::users`].
    users: FxHashMap<Box<str>, u32>,
}

impl ServerSlot {
    fn new(label: &str) -> ServerSlot {
        ServerSlot {
            label: label.into(),
            admitted: false,
            info_checked: false,
            events: Default::default(),
            unattributed: None,
            users: FxHashMap::default(),
        }
    }
}

/// The counter handles of server events, by server label and then user
/// label, so that counting one event costs two hash lookups (the server
/// id, the user name) however many series it touches; the other labels
/// (activity, direction, category and cause) are static and index arrays.
///
/// A slot also remembers whether the label guard admitted its label as it
/// is: the raw value equal to an admitted label gets that label back from
/// the guard, so the slot answers without the guard's lock and SipHash
/// lookups. Only admissions are remembered, and the guard never takes one
/// back, so an answer from here is the guard's answer; everything else
/// (new values, values the guard cleans, overflow, which must be counted
/// each time) still goes to the guard. Slots exist only for label values
/// the guard handed out (or the empty value), so they are bounded by its
/// caps.
#[derive(Default)]
struct Slots {
    /// Server label -> index into `servers`.
    by_server: FxHashMap<Box<str>, u32>,
    servers: Vec<ServerSlot>,
    users: Vec<UserSlot>,
}

impl Slots {
    /// The slot of a server label, created if new.
    fn server_slot(&mut self, label: &str) -> usize {
        if let Some(&i) = self.by_server.get(label) {
            return i as usize;
        }
        let i = self.servers.len();
        self.servers.push(ServerSlot::new(label));
        self.by_server
            .insert(label.into(), u32::try_from(i).expect("bounded by the caps"));
        i
    }

    /// The slot of the label of server id `raw` (asking the guard unless
    /// `raw` was admitted as it is before).
    fn server(&mut self, metrics: &Metrics, raw: &str) -> usize {
        if let Some(&i) = self.by_server.get(raw) {
            if self.servers[i as usize].admitted {
                return i as usize;
            }
        }
        // The empty value takes no place and needs no guard.
        let label = if raw.is_empty() {
            Cow::Borrowed(raw)
        } else {
            metrics.id_label("server_id", raw)
        };
        let i = self.server_slot(&label);
        if unchanged(&label, raw) {
            self.servers[i].admitted = true;
        }
        i
    }

    /// The slot of a user label on server slot `server`, created if new.
    fn user_slot(&mut self, server: usize, label: &str) -> usize {
        if let Some(&i) = self.servers[server].users.get(label) {
            return i as usize;
        }
        let i = self.users.len();
        self.users.push(UserSlot::new(label));
        self.servers[server]
            .users
            .insert(label.into(), u32::try_from(i).expect("bounded by the caps"));
        i
    }

    /// The slot of the label of user name `raw` on server slot `server`.
    fn user(&mut self, metrics: &Metrics, server: usize, raw: &str) -> usize {
        if let Some(&i) = self.servers[server].users.get(raw) {
            if self.users[i as usize].admitted {
                return i as usize;
            }
        }
        let label = if raw.is_empty() {
            Cow::Borrowed(raw)
        } else {
            metrics.user_label(&self.servers[server].label, raw)
        };
        let i = self.user_slot(server, &label);
        if unchanged(&label, raw) {
            self.users[i].admitted = true;
        }
        i
    }

    /// The guard's `is_admitted` for user name `raw` on server slot `server`.
    fn is_admitted(&self, metrics: &Metrics, server: usize, raw: &str) -> bool {
        let slot = &self.servers[server];
        (!raw.is_empty()
            && slot
                .users
                .get(raw)
                .is_some_and(|&i| self.users[i as usize].admitted))
            || metrics.with_guard(|g| g.is_admitted(&slot.label, raw))
    }
}

/// Records a CONNECTED at `ts` (seconds) in a user's slot: the newest time
/// wins, and sets the silent-partner gauge.
fn note_session(metrics: &Metrics, server: &str, user: &mut UserSlot, ts: f64) {
    let UserSlot {
        label,
        last_session,
        ..
    } = user;
    let (last, gauge) = last_session.get_or_insert((f64::MIN, None));
    if ts > *last {
        *last = ts;
        gauge
            .get_or_insert_with(|| {
                metrics
                    .user_last_session
                    .with_label_values(&[server, label])
            })
            .set(ts);
    }
}

/// A server event without an activity (legacy lines that name none).
static NO_ACTIVITY: Activity = Activity::Other(String::new());

pub struct Pipeline {
    metrics: Arc<Metrics>,
    attributor: Attributor,
    handles: Handles,
    slots: Slots,
    sample_window: Instant,
    samples_in_window: u32,
}

impl Pipeline {
    pub fn new(metrics: Arc<Metrics>, cfg: PipelineConfig) -> Pipeline {
        let handles = Handles::new(&metrics);
        Pipeline {
            metrics,
            attributor: Attributor::new(cfg.session_cache_size, cfg.session_ttl),
            handles,
            slots: Slots::default(),
            sample_window: Instant::now(),
            samples_in_window: 0,
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Last CONNECTED per (server, user label), for the state file.
    pub fn last_sessions(&self) -> Vec<LastSession> {
        let slots = &self.slots;
        let mut v: Vec<LastSession> = slots
            .servers
            .iter()
            .flat_map(|server| {
                server.users.values().filter_map(|&u| {
                    let user = &slots.users[u as usize];
                    user.last_session.as_ref().map(|(ts, _)| LastSession {
                        server_id: server.label.to_string(),
                        user: user.label.to_string(),
                        timestamp_seconds: *ts,
                    })
                })
            })
            .collect();
        v.sort_by(|a, b| (&a.server_id, &a.user).cmp(&(&b.server_id, &b.user)));
        v
    }

    /// Restores the silent-partner gauge after a restart. Newer values win,
    /// and restored users pass through the same label cap.
    pub fn restore_last_sessions(&mut self, v: &[LastSession]) {
        let metrics = &*self.metrics;
        for s in v {
            let server = metrics.id_label("server_id", &s.server_id);
            let user = metrics.user_label(&server, &s.user);
            let si = self.slots.server_slot(&server);
            let ui = self.slots.user_slot(si, &user);
            note_session(
                metrics,
                &self.slots.servers[si].label,
                &mut self.slots.users[ui],
                s.timestamp_seconds,
            );
        }
    }

    /// Runs one event through parse → attribute → classify → count.
    pub fn process<'a>(&mut self, raw: &'a RawEvent) -> Outcome<'a> {
        self.process_with(raw, &|_| false)
    }

    /// [`Self::process`], skipping (and counting in
    /// `aws_transfer_exporter_legacy_duplicates_skipped_total`) the legacy
    /// lines of the servers for which `skip_legacy(server_id)` is true: the
    /// ingest boundary's duplicate policy.
    pub fn process_with<'a>(
        &mut self,
        raw: &'a RawEvent,
        skip_legacy: &dyn Fn(&str) -> bool,
    ) -> Outcome<'a> {
        let mut out = Outcome {
            event_id: Cow::Borrowed(&raw.event_id),
            timestamp_ms: raw.timestamp_ms,
            log_group: Cow::Borrowed(&raw.log_group),
            log_stream: Cow::Borrowed(&raw.log_stream),
            ..Default::default()
        };
        match parse::parse(&raw.message) {
            Ok(parsed) => {
                out.format = Some(parsed.format());
                match parsed {
                    Parsed::Server { format, mut event } => {
                        // By reference: the event is large, and moving it
                        // again cost a copy per event.
                        self.server(raw, format, &mut event, skip_legacy, &mut out)
                    }
                    Parsed::Connector(ev) => self.connector(ev, &mut out),
                    Parsed::ConnectorThrottled { connector_id } => {
                        let cid = connector_id.or_else(|| {
                            attribute::server_from_group(&raw.log_group).map(str::to_owned)
                        });
                        let label = self
                            .metrics
                            .id_label("connector_id", cid.as_deref().unwrap_or(""));
                        let c = classify::connector_throttled();
                        self.metrics
                            .connector_errors
                            .with_label_values(&[&label, c.cause])
                            .inc();
                        out.server_id = cid.map(Cow::Owned);
                        out.activity = Some("ExecutionThrottled".into());
                        self.set_class(&mut out, c);
                    }
                    Parsed::As2(ev) => self.as2(raw, ev, &mut out),
                    Parsed::Workflow(ev) => self.workflow(ev, &mut out),
                }
            }
            Err(e) => {
                let family = parse::family(&raw.message);
                self.metrics
                    .unparsed_events
                    .with_label_values(&[family, e.as_str()])
                    .inc();
                out.parse_error = Some(e.as_str());
                self.sample_unparsed(raw, e.as_str());
            }
        }
        out
    }

    fn set_class(&mut self, out: &mut Outcome<'_>, c: Classification) {
        out.category = Some(c.category);
        out.cause = Some(c.cause);
        out.advice = Some(c.advice);
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

    fn server<'a>(
        &mut self,
        raw: &'a RawEvent,
        format: Format,
        ev: &mut ServerEvent<'a>,
        skip_legacy: &dyn Fn(&str) -> bool,
        out: &mut Outcome<'a>,
    ) {
        let at = self.attributor.attribute(ev, raw);
        let server_raw = at.server_id.as_deref().unwrap_or("");
        let metrics = &*self.metrics;
        let slots = &mut self.slots;
        let si = slots.server(metrics, server_raw);
        if format == Format::Legacy && skip_legacy(server_raw) {
            metrics
                .legacy_duplicates
                .with_label_values(&[&slots.servers[si].label])
                .inc();
            out.activity = ev.activity.as_ref().map(Activity::name);
            out.server_id = at.server_id;
            return;
        }
        let activity = ev.activity.as_ref().unwrap_or(&NO_ACTIVITY);
        {
            let server = &mut slots.servers[si];
            if !server_raw.is_empty() && !server.info_checked {
                server.info_checked = true;
                if let (Some(region), Some(account)) =
                    (ev.region.as_deref(), ev.account_id.as_deref())
                {
                    metrics.ensure_server_info(&server.label, region, account);
                }
            }
            match activity.index() {
                Some(k) => server.events[k]
                    .get_or_insert_with(|| {
                        metrics
                            .events
                            .with_label_values(&[&server.label, activity.as_str()])
                    })
                    .inc(),
                None => {
                    let name = activity.as_str();
                    let valid = !name.is_empty()
                        && name.len() <= 64
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
                    let activity_cleaned;
                    let activity_label: &str = if valid {
                        activity_cleaned = metrics.id_label("activity", name);
                        &activity_cleaned
                    } else {
                        crate::metrics::OVERFLOW_LABEL
                    };
                    self.handles
                        .events
                        .get(&[&server.label, activity_label])
                        .inc();
                }
            }
            let expects_user = !matches!(
                activity,
                Activity::KexFailure | Activity::ConnectionRejected | Activity::TlsResumeFailure
            );
            if at.user.is_none() && expects_user {
                server
                    .unattributed
                    .get_or_insert_with(|| {
                        metrics
                            .unattributed_events
                            .with_label_values(&[&server.label])
                    })
                    .inc();
            }
        }
        let user_raw = at.user.as_deref().unwrap_or("");
        let class = classify::server(ev);

        // The user label: strangers' names never become labels. A name from
        // an AUTH_FAILURE is used only when its cause proves the user exists
        // (the classifier says which) or when the name is already known on
        // this server from a trusted source (CONNECTED, streams).
        let ui = if *activity == Activity::AuthFailure {
            match class {
                Some(c) if c.proves_user_exists() => slots.user(metrics, si, user_raw),
                _ => {
                    // Admitted already: the guard returns the cleaned value.
                    if slots.is_admitted(metrics, si, user_raw) {
                        slots.user(metrics, si, user_raw)
                    } else {
                        slots.user_slot(si, "")
                    }
                }
            }
        } else {
            slots.user(metrics, si, user_raw)
        };
        let server = &*slots.servers[si].label;
        let user = &mut slots.users[ui];

        match activity {
            Activity::Connected => {
                user.sessions
                    .get_or_insert_with(|| {
                        metrics.sessions.with_label_values(&[server, &user.label])
                    })
                    .inc();
                let ts = raw.timestamp_ms as f64 / 1000.0;
                note_session(metrics, server, user, ts);
            }
            Activity::Close | Activity::PartialClose => {
                let mut any = false;
                for (d, (dir, n)) in [("upload", ev.bytes_in), ("download", ev.bytes_out)]
                    .into_iter()
                    .enumerate()
                {
                    if let Some(n) = n {
                        any = true;
                        user.files[d]
                            .get_or_insert_with(|| {
                                metrics.files.with_label_values(&[server, &user.label, dir])
                            })
                            .inc();
                        user.bytes[d]
                            .get_or_insert_with(|| {
                                metrics.bytes.with_label_values(&[server, &user.label, dir])
                            })
                            .inc_by(n);
                    }
                }
                if !any {
                    user.files[2]
                        .get_or_insert_with(|| {
                            metrics
                                .files
                                .with_label_values(&[server, &user.label, "unknown"])
                        })
                        .inc();
                }
            }
            _ => {}
        }
        if let Some(c) = class {
            let errors = &mut user.errors;
            let at = errors.iter().position(|(category, cause, _)| {
                std::ptr::eq(*category, c.category) && std::ptr::eq(*cause, c.cause)
            });
            let at = at.unwrap_or_else(|| {
                let h =
                    metrics
                        .errors
                        .with_label_values(&[server, &user.label, c.category, c.cause]);
                errors.push((c.category, c.cause, h));
                errors.len() - 1
            });
            errors[at].2.inc();
        }
        out.activity = Some(activity.name());
        out.message = ev.message.take();
        out.server_id = at.server_id;
        out.user = at.user;
        if let Some(c) = class {
            self.set_class(out, c);
        }
    }

    fn connector(&mut self, ev: crate::event::ConnectorEvent, out: &mut Outcome<'_>) {
        let cid = ev.connector_id.as_deref().unwrap_or("");
        let label = self.metrics.id_label("connector_id", cid);
        let operation = bounded_word(ev.operation.as_deref());
        let status = bounded_word(ev.status_code.as_deref());
        // AWS writes these words, but the sets are open: cap them like ids.
        let operation_label = self.metrics.id_label("operation", &operation);
        let status_label = self.metrics.id_label("status", &status);
        let (label, operation_label) = (&*label, &*operation_label);
        self.metrics
            .connector_transfers
            .with_label_values(&[label, operation_label, &status_label])
            .inc();
        if status == "COMPLETED" {
            if let Some(b) = ev.bytes {
                self.metrics
                    .connector_bytes
                    .with_label_values(&[label, operation_label])
                    .inc_by(b);
            }
        }
        out.server_id = ev.connector_id.clone().map(Cow::Owned);
        out.activity = Some(format!("{operation} {status}").into());
        out.message = ev.failure_message.clone().map(Cow::Owned);
        if let Some(c) = classify::connector(&ev) {
            self.metrics
                .connector_errors
                .with_label_values(&[label, c.cause])
                .inc();
            self.set_class(out, c);
        }
    }

    fn as2(&mut self, raw: &RawEvent, ev: crate::event::As2Event, out: &mut Outcome<'_>) {
        let (resource, direction) = match (&ev.server_id, &ev.connector_id) {
            (Some(s), _) => (s.clone(), "inbound"),
            (None, Some(c)) => (c.clone(), "outbound"),
            (None, None) => (
                attribute::server_from_group(&raw.log_group)
                    .unwrap_or("")
                    .to_owned(),
                "unknown",
            ),
        };
        let status = bounded_word(ev.status_code.as_deref());
        out.server_id = Some(Cow::<str>::Owned(resource.clone())).filter(|r| !r.is_empty());
        out.activity = Some(status.clone().into());
        out.message = ev.failure_message.clone().map(Cow::Owned);
        // Only final states count (PROCESSING, MDN_* are intermediate).
        if status != "COMPLETED" && status != "FAILED" {
            return;
        }
        let label = self.metrics.id_label("resource_id", &resource);
        let label: &str = &label;
        self.metrics
            .as2_messages
            .with_label_values(&[label, direction, &status])
            .inc();
        if let Some(c) = classify::as2(&ev) {
            self.metrics
                .as2_errors
                .with_label_values(&[label, direction, c.cause])
                .inc();
            self.set_class(out, c);
        }
    }

    fn workflow(&mut self, ev: crate::event::WorkflowEvent, out: &mut Outcome<'_>) {
        let wid = self
            .metrics
            .id_label("workflow_id", ev.workflow_id.as_deref().unwrap_or(""));
        let status = match ev.kind.as_str() {
            "ExecutionCompleted" => Some("completed"),
            "ExecutionErrored" => Some("errored"),
            "ExecutionThrottled" => Some("throttled"),
            _ => None,
        };
        if let Some(status) = status {
            self.metrics
                .workflow_executions
                .with_label_values(&[&wid, status])
                .inc();
        }
        out.server_id = ev.server_id.clone().map(Cow::Owned);
        out.user = ev.user.clone().map(Cow::Owned);
        out.activity = Some(ev.kind.clone().into());
        out.message = ev.error_message.clone().map(Cow::Owned);
        if let Some(c) = classify::workflow(&ev) {
            let server = self
                .metrics
                .id_label("server_id", ev.server_id.as_deref().unwrap_or(""));
            let user = self
                .metrics
                .user_label(&server, ev.user.as_deref().unwrap_or(""));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{render, Limits, OVERFLOW_LABEL};
    use prometheus::Registry;
    use proptest::prelude::*;

    const ARN: &str = "arn:aws:transfer:eu-west-1:111122223333:server/s-0123456789abcdef0";

    fn pipeline(limits: Limits) -> (Registry, Pipeline) {
        let reg = Registry::new();
        let m = Arc::new(Metrics::new(&reg, limits));
        (reg, Pipeline::new(m, PipelineConfig::default()))
    }

    fn raw(stream: &str, msg: &str) -> RawEvent {
        RawEvent {
            log_group: "/aws/transfer/shared".into(),
            log_stream: stream.into(),
            event_id: "1".into(),
            timestamp_ms: 1_764_000_000_000,
            message: msg.into(),
        }
    }

    /// A dual-logging server's legacy lines are skipped and counted; its
    /// JSON events, other servers' legacy lines, and everything after the
    /// set is cleared count as usual.
    #[test]
    fn legacy_duplicates_are_skipped_only_for_listed_servers() {
        let (reg, mut p) = pipeline(Limits::default());
        let legacy =
            "ERRORS AUTH_FAILURE Method=publickey User=x Message=\"The user is unrecognized\"";
        let json = format!(
            r#"{{"activity-type":"AUTH_FAILURE","resource-arn":"{ARN}","message":"Authentication failure","user":"x"}}"#
        );
        let ev = |group: &str, msg: &str| RawEvent {
            log_group: group.into(),
            log_stream: "ERRORS".into(),
            message: msg.into(),
            ..Default::default()
        };
        let dual = "/aws/transfer/s-0123456789abcdef0";
        let other = "/aws/transfer/s-0fedcba9876543210";
        let skip = |s: &str| s == "s-0123456789abcdef0";
        assert_eq!(p.process_with(&ev(dual, legacy), &skip).cause, None);
        assert_eq!(
            p.process_with(&ev("/custom", &json), &skip).cause,
            Some("unknown_user")
        );
        assert_eq!(
            p.process_with(&ev(other, legacy), &skip).cause,
            Some("unknown_user")
        );
        assert_eq!(p.process(&ev(dual, legacy)).cause, Some("unknown_user"));
        let text = render(&reg);
        let errors = |server: &str| {
            sample(
                &text,
                &format!(
                    r#"aws_transfer_errors_total{{category="auth",cause="unknown_user",server_id="{server}",user=""}}"#
                ),
            )
        };
        assert_eq!(errors("s-0123456789abcdef0"), Some(2.0), "{text}");
        assert_eq!(errors("s-0fedcba9876543210"), Some(1.0), "{text}");
        assert_eq!(
            sample(
                &text,
                r#"aws_transfer_exporter_legacy_duplicates_skipped_total{server_id="s-0123456789abcdef0"}"#
            ),
            Some(1.0),
            "{text}"
        );
    }

    /// Connector operation and status words are AWS's, but open sets: they
    /// pass through the same cap as ids.
    #[test]
    fn connector_operation_and_status_labels_are_capped() {
        let (reg, mut p) = pipeline(Limits {
            max_ids: 2,
            ..Limits::default()
        });
        for op in ["SEND", "RETRIEVE", "LIST", "DELETE", "MOVE"] {
            let e = raw(
                "c",
                &format!(
                    r#"{{"operation":"{op}","connector-id":"c-1","status-code":"COMPLETED","bytes":1}}"#
                ),
            );
            p.process(&e);
        }
        let text = render(&reg);
        let series = text
            .lines()
            .filter(|l| l.starts_with("aws_transfer_connector_transfers_total{"))
            .count();
        assert_eq!(series, 3, "two operations and ~other:\n{text}");
        assert!(text.contains(r#"operation="~other""#), "{text}");
        assert_eq!(
            sample(
                &text,
                r#"aws_transfer_exporter_label_overflow_total{label="operation"}"#
            ),
            Some(3.0),
            "{text}"
        );
    }

    /// Value of one sample in the exposition, by its exact series text.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
            .map(|v| v.parse().expect("number"))
    }

    #[test]
    fn unknown_user_never_becomes_a_label_but_key_mismatch_does() {
        let (reg, mut p) = pipeline(Limits::default());
        p.process(&raw("ERRORS", &format!(r#"{{"activity-type":"AUTH_FAILURE","resource-arn":"{ARN}","message":"Authentication failure","user":"evil-name"}}"#)));
        p.process(&raw("ERRORS", &format!(r#"{{"activity-type":"AUTH_FAILURE","resource-arn":"{ARN}","message":"RSA SHA256:5xnBpqyCABcNrzDPG/YfQw50ZKAtzcetXTX1MOrJslQ","user":"jdoe"}}"#)));
        p.process(&raw("ERRORS", &format!(r#"{{"activity-type":"AUTH_FAILURE","resource-arn":"{ARN}","method":"password","message":"Invalid user name or password","user":"maybe"}}"#)));
        let text = render(&reg);
        assert!(!text.contains("evil-name"), "{text}");
        assert!(
            !text.contains("maybe"),
            "unverified password-login names stay out: {text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"aws_transfer_errors_total{category="auth",cause="unknown_user",server_id="s-0123456789abcdef0",user=""}"#
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"aws_transfer_errors_total{category="auth",cause="key_mismatch",server_id="s-0123456789abcdef0",user="jdoe"}"#
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"aws_transfer_errors_total{category="auth",cause="invalid_password",server_id="s-0123456789abcdef0",user=""}"#
            ),
            Some(1.0),
            "{text}"
        );
        // Once a user is seen connecting, its failed password logins are labelled.
        p.process(&raw("s-0123456789abcdef0/maybe", &format!(r#"{{"activity-type":"CONNECTED","resource-arn":"{ARN}","user":"maybe","session-id":"x1"}}"#)));
        p.process(&raw("ERRORS", &format!(r#"{{"activity-type":"AUTH_FAILURE","resource-arn":"{ARN}","method":"password","message":"Invalid user name or password","user":"maybe"}}"#)));
        let text = render(&reg);
        assert_eq!(
            sample(
                &text,
                r#"aws_transfer_errors_total{category="auth",cause="invalid_password",server_id="s-0123456789abcdef0",user="maybe"}"#
            ),
            Some(1.0),
            "{text}"
        );
    }

    #[test]
    fn session_attribution_counts_bytes_per_user_and_direction() {
        let (reg, mut p) = pipeline(Limits::default());
        // No stream names at all: only the session map can attribute.
        p.process(&raw("", &format!(r#"{{"activity-type":"CONNECTED","resource-arn":"{ARN}","user":"jdoe","session-id":"26315c40e111fcf04b00"}}"#)));
        p.process(&raw("", &format!(r#"{{"activity-type":"CLOSE","resource-arn":"{ARN}","bytes-in":"2048","session-id":"26315c40e111fcf04b00"}}"#)));
        p.process(&raw("", &format!(r#"{{"activity-type":"CLOSE","resource-arn":"{ARN}","bytes-out":100,"session-id":"26315c40e111fcf04b00"}}"#)));
        let e = raw(
            "",
            &format!(
                r#"{{"activity-type":"ERROR","resource-arn":"{ARN}","message":"Access denied","session-id":"26315c40e111fcf04b00"}}"#
            ),
        );
        let o = p.process(&e);
        assert_eq!(o.user.as_deref(), Some("jdoe"));
        assert_eq!(o.cause, Some("access_denied"));
        let text = render(&reg);
        for (series, want) in [
            (
                r#"aws_transfer_sessions_total{server_id="s-0123456789abcdef0",user="jdoe"}"#,
                1.0,
            ),
            (
                r#"aws_transfer_files_total{direction="upload",server_id="s-0123456789abcdef0",user="jdoe"}"#,
                1.0,
            ),
            (
                r#"aws_transfer_bytes_total{direction="upload",server_id="s-0123456789abcdef0",user="jdoe"}"#,
                2048.0,
            ),
            (
                r#"aws_transfer_bytes_total{direction="download",server_id="s-0123456789abcdef0",user="jdoe"}"#,
                100.0,
            ),
            (
                r#"aws_transfer_errors_total{category="iam",cause="access_denied",server_id="s-0123456789abcdef0",user="jdoe"}"#,
                1.0,
            ),
            (
                r#"aws_transfer_events_total{activity="CLOSE",server_id="s-0123456789abcdef0"}"#,
                2.0,
            ),
            (
                r#"aws_transfer_user_last_session_timestamp_seconds{server_id="s-0123456789abcdef0",user="jdoe"}"#,
                1_764_000_000.0,
            ),
            (
                r#"aws_transfer_server_info{account_id="111122223333",domain="",endpoint_type="",identity_provider_type="",protocols="",region="eu-west-1",server_id="s-0123456789abcdef0"}"#,
                1.0,
            ),
        ] {
            assert_eq!(sample(&text, series), Some(want), "{series}\n{text}");
        }
    }

    #[test]
    fn unparseable_events_are_counted_not_dropped() {
        let (reg, mut p) = pipeline(Limits::default());
        let e = raw("x", "{broken");
        let o = p.process(&e);
        assert_eq!(o.parse_error, Some("invalid_json"));
        p.process(&raw("x", "START RequestId: 1"));
        p.process(&raw("x", ""));
        let text = render(&reg);
        assert_eq!(
            sample(
                &text,
                r#"aws_transfer_exporter_unparsed_events_total{format="json",reason="invalid_json"}"#
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"aws_transfer_exporter_unparsed_events_total{format="text",reason="unknown_text"}"#
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"aws_transfer_exporter_unparsed_events_total{format="text",reason="empty"}"#
            ),
            Some(1.0),
            "{text}"
        );
    }

    #[test]
    fn last_sessions_round_trip_through_restore() {
        let (_reg, mut p) = pipeline(Limits::default());
        p.process(&raw("s-0123456789abcdef0/jdoe", &format!(r#"{{"activity-type":"CONNECTED","resource-arn":"{ARN}","user":"jdoe","session-id":"a"}}"#)));
        let saved = p.last_sessions();
        assert_eq!(saved.len(), 1);
        let (reg2, mut p2) = pipeline(Limits::default());
        p2.restore_last_sessions(&saved);
        assert_eq!(p2.last_sessions(), saved);
        let text = render(&reg2);
        assert_eq!(
            sample(
                &text,
                r#"aws_transfer_user_last_session_timestamp_seconds{server_id="s-0123456789abcdef0",user="jdoe"}"#
            ),
            Some(1_764_000_000.0),
            "{text}"
        );
        // An older restored value never overwrites a newer one.
        p2.restore_last_sessions(&[LastSession {
            timestamp_seconds: 5.0,
            ..saved[0].clone()
        }]);
        assert_eq!(p2.last_sessions(), saved);
    }

    /// The attack: 100,000 AUTH_FAILUREs with random user names and IPs, plus
    /// key mismatches and sessions for many names, must leave the series count
    /// bounded by the cap, and the pipeline's own memory bounded too.
    #[test]
    fn attack_leaves_series_and_memory_bounded() {
        let cap = 50;
        let (reg, mut p) = pipeline(Limits {
            max_users_per_server: cap,
            ..Limits::default()
        });
        let mut rng_state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            rng_state ^= rng_state << 13;
            rng_state ^= rng_state >> 7;
            rng_state ^= rng_state << 17;
            rng_state
        };
        for i in 0..100_000u64 {
            let user = format!("u{:x}", next());
            let ip = format!(
                "{}.{}.{}.{}",
                next() % 256,
                next() % 256,
                next() % 256,
                next() % 256
            );
            let msg = match i % 4 {
                0 | 1 => format!(
                    r#"{{"activity-type":"AUTH_FAILURE","resource-arn":"{ARN}","message":"Authentication failure","user":"{user}","source-ip":"{ip}"}}"#
                ),
                // Names that do exist can still be many: they are capped.
                2 => format!(
                    r#"{{"activity-type":"AUTH_FAILURE","resource-arn":"{ARN}","message":"RSA SHA256:abc","user":"{user}","source-ip":"{ip}"}}"#
                ),
                _ => format!(
                    r#"{{"activity-type":"CONNECTED","resource-arn":"{ARN}","user":"{user}","session-id":"{:x}","source-ip":"{ip}"}}"#,
                    next()
                ),
            };
            p.process(&raw("ERRORS", &msg));
        }
        let families = reg.gather();
        let series: usize = families.iter().map(|f| f.get_metric().len()).sum();
        // users ≤ cap + 1 overflow value, per family with a user label.
        assert!(series < 4 * (cap + 2) + 60, "series grew to {series}");
        let text = render(&reg);
        assert!(
            !text.contains("source_ip") && !text.contains("203.0."),
            "no IP labels"
        );
        assert!(text.contains(OVERFLOW_LABEL), "overflow is visible");
        let overflow = sample(
            &text,
            r#"aws_transfer_exporter_label_overflow_total{label="user"}"#,
        )
        .unwrap_or(0.0);
        assert!(overflow > 40_000.0, "overflow counted: {overflow}");
        // Pipeline memory: last-session map follows labels (bounded by the
        // cap), the session map by its LRU size.
        assert!(
            p.last_sessions().len() <= cap + 1,
            "{}",
            p.last_sessions().len()
        );
        assert!(p.attributor.len() <= PipelineConfig::default().session_cache_size);
        assert!(p.handles.events.map.len() < 10);
    }

    proptest! {
        // 2,000 cases each by default (a few seconds); run longer with
        // PROPTEST_CASES=1000000 cargo test --release --lib arbitrary_
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(2000),
            .. ProptestConfig::default()
        })]

        /// Arbitrary bytes (lossily decoded, as sources do) never panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512),
                                       stream in "[a-zA-Z0-9./_-]{0,40}") {
            let (_reg, mut p) = pipeline(Limits::default());
            let msg = String::from_utf8_lossy(&bytes).into_owned();
            let _ = p.process(&RawEvent { log_group: "/aws/transfer/s-1".into(), log_stream: stream, message: msg, ..Default::default() });
        }

        /// Arbitrary JSON objects built from the keys we read, with any value
        /// types, never panic and always yield a format or a parse error.
        #[test]
        fn arbitrary_json_never_panics(
            fields in proptest::collection::vec((
                prop::sample::select(vec!["activity-type","resource-arn","session-id","user","message","bytes-in","bytes-out",
                    "connector-id","connectorId","status-code","failure-code","failure-message","bytes","as2-message-id",
                    "server-id","type","workflowId","transferDetails","details","operation","x"]),
                prop_oneof![
                    any::<String>().prop_map(serde_json::Value::from),
                    any::<i64>().prop_map(serde_json::Value::from),
                    any::<f64>().prop_map(|f| serde_json::json!(f)),
                    any::<bool>().prop_map(serde_json::Value::from),
                    Just(serde_json::Value::Null),
                    prop::sample::select(vec!["AUTH_FAILURE","ERROR","CONNECTED","CLOSE","FAILED","COMPLETED","StepErrored",
                        "Authentication failure","RSA SHA256:x","Access denied","TIMEOUT_ERROR"]).prop_map(serde_json::Value::from),
                    any::<String>().prop_map(|s| serde_json::json!({"serverId": s, "username": s})),
                    Just(serde_json::json!([1, {"a": null}])),
                ]), 0..8)) {
            let obj: serde_json::Map<String, serde_json::Value> = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            let msg = serde_json::Value::Object(obj).to_string();
            let (_reg, mut p) = pipeline(Limits::default());
            let e = RawEvent { message: msg, ..Default::default() };
            let o = p.process(&e);
            prop_assert!(o.format.is_some() || o.parse_error.is_some());
        }
    }
}
