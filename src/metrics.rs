//! Every metric family the exporter serves, in one place: this module *is*
//! the metric contract (see README "Metrics reference"; renaming anything
//! here is a breaking change and goes in CHANGELOG.md).
//!
//! No global registry: [`Metrics::new`] registers every family on the
//! [`Registry`] it is given.
//!
//! **Label bounds.** User names in failed logins and source IPs are chosen by
//! strangers. Source IPs never become labels. User label values pass through
//! [`LabelGuard`]: a per-server cap on distinct values, the excess folded into
//! [`OVERFLOW_LABEL`] and counted in
//! `aws_transfer_exporter_label_overflow_total`. Server ids, connector ids and
//! other ids that come from log content share one cap per id label.
//!
//! **Label values are clean.** The same guard replaces control characters in
//! every value it admits ([`sanitize_label_value`]; the rule is written there
//! and in docs/labels.md).

use std::borrow::Cow;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::Mutex;

use prometheus::core::Collector;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub mod snapshot;
mod store;

pub use snapshot::Snapshot;
pub use store::{IntCounter, IntCounterVec};

/// Prefix of every product metric.
pub const PREFIX: &str = "aws_transfer";

/// The label value that replaces a user (or id) beyond its cap. It contains
/// `~`, which no Transfer Family user name can (names are `[A-Za-z0-9_.@-]`),
/// so it can never collide with a real user.
pub const OVERFLOW_LABEL: &str = "~other";

pub use crate::config::defaults::DEFAULT_MAX_USERS_PER_SERVER;

pub use crate::config::defaults::DEFAULT_MAX_IDS;

/// The git revision this binary was built from (`build.rs`: the
/// `GIT_REVISION` environment variable, else `git rev-parse --short HEAD`,
/// else `unknown`): the `revision` of `aws_transfer_exporter_build_info`.
pub const REVISION: &str = match option_env!("GIT_REVISION") {
    Some(r) => r,
    None => "unknown",
};

/// What replaces a character that must not reach a label value: U+FFFD,
/// the Unicode replacement character (the same one lossy UTF-8 decoding
/// uses for invalid bytes). Not `_` or `?`: those occur in real names, so
/// `jd\0oe` would be counted as the real user `jd_oe`; U+FFFD cannot occur
/// in a Transfer Family user name (`[A-Za-z0-9_.@-]`) or an AWS id, so a
/// cleaned value never collides with a genuine one.
pub const LABEL_REPLACEMENT: char = '\u{FFFD}';

/// Is `c` a character that must not reach a label value?
///
/// - every Unicode control character (general category Cc): C0 U+0000–U+001F
///   (NUL, tab, line feed, carriage return, ESC, …), DEL U+007F and C1
///   U+0080–U+009F (which some terminals read as CSI and friends);
/// - the line and paragraph separators U+2028 and U+2029 (they break lines
///   in dashboards and notifications as a newline does);
/// - the bidirectional controls U+200E, U+200F, U+202A–U+202E and
///   U+2066–U+2069 (they reorder how the rest of the value is displayed,
///   so a label could read as another user or server).
///
/// Everything else, including other non-ASCII text, is kept: labels show
/// what the log said, minus what would corrupt its display.
pub fn is_unsafe_in_label(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// `value` with every character for which [`is_unsafe_in_label`] holds
/// replaced by [`LABEL_REPLACEMENT`], one for one (a run of three control
/// characters becomes three replacement characters, so lengths stay
/// comparable). Borrows, allocating nothing, when the value is clean, which
/// is every value AWS writes.
///
/// This is the rule for every label value taken from a log: user names,
/// server, connector, workflow and resource ids, operation, status and
/// activity words. They all reach a metric through the label guard
/// ([`Metrics::user_label`], [`Metrics::id_label`]), which applies it before
/// counting a value against its cap; the few fixed-vocabulary labels
/// (category, cause, direction) are constants.
pub fn sanitize_label_value(value: &str) -> Cow<'_, str> {
    // Fast path: printable ASCII is always clean.
    if value.bytes().all(|b| (0x20..0x7f).contains(&b)) || !value.chars().any(is_unsafe_in_label) {
        return Cow::Borrowed(value);
    }
    Cow::Owned(
        value
            .chars()
            .map(|c| {
                if is_unsafe_in_label(c) {
                    LABEL_REPLACEMENT
                } else {
                    c
                }
            })
            .collect(),
    )
}

/// Limits for the label guard; come from config (`limits.*`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_users_per_server: usize,
    pub max_ids: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_users_per_server: DEFAULT_MAX_USERS_PER_SERVER,
            max_ids: DEFAULT_MAX_IDS,
        }
    }
}

/// Caps distinct label values. Pure bookkeeping; the caller counts overflow.
#[derive(Debug, Default)]
pub struct LabelGuard {
    limits: Limits,
    users: HashMap<String, HashSet<String>>,
    ids: HashMap<&'static str, HashSet<String>>,
}

impl LabelGuard {
    pub fn new(limits: Limits) -> Self {
        LabelGuard {
            limits,
            ..Default::default()
        }
    }

    /// Returns the label value to use for `user` on `server`: the user
    /// (cleaned by [`sanitize_label_value`]) if already admitted or there is
    /// room, else [`OVERFLOW_LABEL`]. The cap counts cleaned values, so two
    /// names that differ only in control characters take one place.
    /// The empty string (no user) always passes and takes no room.
    pub fn user<'a>(&mut self, server: &str, user: &'a str) -> (Cow<'a, str>, bool) {
        if user.is_empty() {
            return (Cow::Borrowed(user), false);
        }
        let user = sanitize_label_value(user);
        let cap = self.limits.max_users_per_server;
        let set = match self.users.get_mut(server) {
            Some(s) => s,
            None => self.users.entry(server.to_owned()).or_default(),
        };
        if set.contains(&*user) {
            return (user, false);
        }
        if set.len() < cap {
            set.insert(user.clone().into_owned());
            (user, false)
        } else {
            (Cow::Borrowed(OVERFLOW_LABEL), true)
        }
    }

    /// Same for an id label (`kind` names the label, e.g. "server_id").
    pub fn id<'a>(&mut self, kind: &'static str, id: &'a str) -> (Cow<'a, str>, bool) {
        if id.is_empty() {
            return (Cow::Borrowed(id), false);
        }
        let id = sanitize_label_value(id);
        let cap = self.limits.max_ids;
        let set = self.ids.entry(kind).or_default();
        if set.contains(&*id) {
            return (id, false);
        }
        if set.len() < cap {
            set.insert(id.clone().into_owned());
            (id, false)
        } else {
            (Cow::Borrowed(OVERFLOW_LABEL), true)
        }
    }

    /// Whether `user` (as logged; compared cleaned) is already a label value
    /// on `server` (seen from a trusted source: CONNECTED, a stream name, a
    /// session). Use [`LabelGuard::user`] for the value itself.
    pub fn is_admitted(&self, server: &str, user: &str) -> bool {
        !user.is_empty()
            && self
                .users
                .get(server)
                .is_some_and(|s| s.contains(&*sanitize_label_value(user)))
    }

    /// Distinct user values admitted for a server (for tests and the landing page).
    pub fn users_admitted(&self, server: &str) -> usize {
        self.users.get(server).map_or(0, HashSet::len)
    }
}

/// Histogram buckets for AWS API call latency, in seconds.
const API_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Histogram buckets for one poll round of one log group, in seconds.
const POLL_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];
/// Histogram buckets for `ingestionTime - timestamp`, in seconds: from the
/// usual sub-second to beyond any late-arrival window worth configuring.
const DELAY_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// Every metric family. Fields are public so sources (poller, inventory,
/// probe) update them directly; the product families with user labels are
/// updated through [`crate::pipeline::Pipeline`] so the guard always applies.
pub struct Metrics {
    /// The registry every family below is registered on (gathered for
    /// `/metrics` and for the state store).
    registry: Registry,
    /// The store group of the counter families below (see `store`).
    group: u64,
    // ---- product: server events (issue: classification core) ----
    /// Every server event: `{server_id, activity}`.
    pub events: IntCounterVec,
    /// Every classified server failure: `{server_id, user, category, cause}`.
    pub errors: IntCounterVec,
    /// CONNECTED: `{server_id, user}`.
    pub sessions: IntCounterVec,
    /// CLOSE/PARTIAL_CLOSE: `{server_id, user, direction}` (upload|download).
    pub files: IntCounterVec,
    /// Bytes of CLOSE/PARTIAL_CLOSE: `{server_id, user, direction}`.
    pub bytes: IntCounterVec,
    /// Last CONNECTED per user (silent-partner signal), Unix seconds.
    pub user_last_session: GaugeVec,

    // ---- product: connectors, AS2, workflows ----
    /// `{connector_id, operation, status}` for connector transfer/listing lines.
    pub connector_transfers: IntCounterVec,
    /// `{connector_id, operation}` bytes of COMPLETED connector transfers.
    pub connector_bytes: IntCounterVec,
    /// `{connector_id, cause}` for FAILED connector lines and throttling.
    pub connector_errors: IntCounterVec,
    /// `{resource_id, direction, status}` final AS2 states (COMPLETED|FAILED).
    pub as2_messages: IntCounterVec,
    /// `{resource_id, direction, cause}` FAILED AS2 messages.
    pub as2_errors: IntCounterVec,
    /// `{workflow_id, status}` ExecutionCompleted|ExecutionErrored|ExecutionThrottled.
    pub workflow_executions: IntCounterVec,

    // ---- product: inventory and probe (issue: see what the logs cannot) ----
    /// `{server_id, region, account_id, endpoint_type, protocols,
    /// identity_provider_type, domain}` = 1. From resource ARNs first (the
    /// last four empty), replaced by the Transfer API's view when known.
    pub server_info: IntGaugeVec,
    /// `{server_id}` 1 when DescribeServer says State=ONLINE.
    pub server_online: IntGaugeVec,
    /// `{server_id, mechanism}` (logging_role|structured|none) = 1.
    pub server_logging_configured: IntGaugeVec,
    /// `{server_id}` users on the server (opt-in: ListUsers).
    pub server_users: IntGaugeVec,
    /// `{server_id, endpoint, port}` 1 when the last probe succeeded.
    pub endpoint_up: IntGaugeVec,
    /// `{server_id, endpoint, port}` duration of the last probe.
    pub endpoint_probe_duration: GaugeVec,
    /// `{server_id, reason}` reason ∈ dns|refused|connect_timeout|banner_timeout|bad_banner|tls.
    pub endpoint_probe_failures: IntCounterVec,

    // ---- exporter self-metrics ----
    /// `{version, revision}` = 1.
    pub build_info: IntGaugeVec,
    /// `{format, reason}`: messages that could not be parsed; `format` is the
    /// detected family (json|text).
    pub unparsed_events: IntCounterVec,
    /// `{label}`: label values folded into `~other` by a cap.
    pub label_overflow: IntCounterVec,
    /// `{server_id}`: server events with no user after every attribution step.
    pub unattributed_events: IntCounterVec,
    /// `{server_id}`: legacy text lines not counted because the server also
    /// delivers every event as structured JSON to a polled group (AWS sends
    /// each event to both when both logging mechanisms are on).
    pub legacy_duplicates: IntCounterVec,
    /// `{operation, outcome}` outcome ∈ success|throttled|denied|not_found|transient|error.
    pub api_calls: IntCounterVec,
    /// `{operation}` AWS API call latency.
    pub api_call_duration: HistogramVec,
    /// `{target, api}` (api ∈ logs|transfer) 1 when the target's last call
    /// of that API succeeded, 0 when it failed (see `aws::health`).
    pub target_up: IntGaugeVec,
    /// `{log_group}` events returned by FilterLogEvents.
    pub events_read: IntCounterVec,
    /// `{log_group}` events skipped because their eventId was already counted.
    pub events_duplicate: IntCounterVec,
    /// `{log_group}` events found older than the late-arrival window (never counted in product metrics).
    pub events_late: IntCounterVec,
    /// `{log_group}` one poll round of one group.
    pub poll_duration: HistogramVec,
    /// `{log_group}` `ingestionTime - timestamp` of each event when first
    /// read (counted or reported late), seconds. Per log group like the
    /// other poll families: the poller's overlap is estimated per group.
    pub ingestion_delay: HistogramVec,
    /// `{log_group, kind}` failed poll rounds (kind as api outcome).
    pub poll_errors: IntCounterVec,
    /// `{log_group}` now minus the newest event counted, seconds. Set when
    /// scraped (see `Sources::refresh_scrape_time_gauges`), so it grows
    /// while polling fails.
    pub log_group_lag: GaugeVec,
    /// `{log_group}` time of the last successful poll round, Unix seconds.
    pub last_successful_poll: GaugeVec,
    /// `{log_group}` now minus the last successful poll round (or the start
    /// of polling, before the first success), seconds. Set when scraped, like
    /// `log_group_lag`.
    pub since_last_successful_poll: GaugeVec,
    /// `{log_group}` timestamp of the newest event counted, Unix seconds.
    pub log_group_last_event: GaugeVec,
    /// Log groups being polled.
    pub log_groups: IntGauge,
    /// Effective poll interval (stretched when the API budget cannot cover every group), seconds.
    pub poll_interval: prometheus::Gauge,
    /// `{outcome}` (success|failure) state-file writes.
    pub state_writes: IntCounterVec,
    /// `{kind}` (whole|record) duration of successful state writes: what
    /// a scrape or a Firehose acknowledgement waits for.
    pub state_write_duration: HistogramVec,

    guard: Mutex<LabelGuard>,
}

fn counter(reg: &Registry, group: u64, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::with_group(group, name, help, labels);
    reg.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn igauge(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    reg.register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

fn gauge(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let g = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    reg.register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

/// State writes: a small record takes ~1 ms, a whole state of 1,000 busy
/// groups about a second (BENCHMARKS.md, "State write per scrape").
const STATE_WRITE_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

fn histogram(
    reg: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .expect("valid metric definition");
    reg.register(Box::new(h.clone()))
        .expect("metric registered once");
    h
}

/// Label names of `aws_transfer_server_info`.
pub const SERVER_INFO_LABELS: &[&str] = &[
    "server_id",
    "region",
    "account_id",
    "endpoint_type",
    "protocols",
    "identity_provider_type",
    "domain",
];

impl Metrics {
    /// Registers every family on `reg`. Panics only on a programming error
    /// (a duplicate or malformed definition), which the unit tests catch.
    pub fn new(reg: &Registry, limits: Limits) -> Metrics {
        let group = store::new_group();
        let m = Metrics {
            registry: reg.clone(),
            group,
            events: counter(reg, group, "aws_transfer_events_total",
                "Transfer Family server log events, by server and activity type.",
                &["server_id", "activity"]),
            errors: counter(reg, group, "aws_transfer_errors_total",
                "Classified server failures, by server, user, category and cause. user is empty for unknown_user and unverified login names.",
                &["server_id", "user", "category", "cause"]),
            sessions: counter(reg, group, "aws_transfer_sessions_total",
                "Authenticated sessions (CONNECTED events).",
                &["server_id", "user"]),
            files: counter(reg, group, "aws_transfer_files_total",
                "Files closed (CLOSE and PARTIAL_CLOSE), by direction (upload|download).",
                &["server_id", "user", "direction"]),
            bytes: counter(reg, group, "aws_transfer_bytes_total",
                "Bytes transferred in closed files, by direction (upload|download).",
                &["server_id", "user", "direction"]),
            user_last_session: gauge(reg, "aws_transfer_user_last_session_timestamp_seconds",
                "Time of the last CONNECTED event of a user (Unix seconds); persisted across restarts.",
                &["server_id", "user"]),
            connector_transfers: counter(reg, group, "aws_transfer_connector_transfers_total",
                "SFTP connector file operations, by connector, operation and status.",
                &["connector_id", "operation", "status"]),
            connector_bytes: counter(reg, group, "aws_transfer_connector_bytes_total",
                "Bytes moved by completed SFTP connector transfers.",
                &["connector_id", "operation"]),
            connector_errors: counter(reg, group, "aws_transfer_connector_errors_total",
                "Failed SFTP connector operations and throttled executions, by cause.",
                &["connector_id", "cause"]),
            as2_messages: counter(reg, group, "aws_transfer_as2_messages_total",
                "AS2 messages in a final state (COMPLETED|FAILED), by server or connector and direction.",
                &["resource_id", "direction", "status"]),
            as2_errors: counter(reg, group, "aws_transfer_as2_errors_total",
                "Failed AS2 messages, by cause (the failure-code in lower case).",
                &["resource_id", "direction", "cause"]),
            workflow_executions: counter(reg, group, "aws_transfer_workflow_executions_total",
                "Managed workflow executions that ended, by status (completed|errored|throttled).",
                &["workflow_id", "status"]),
            server_info: igauge(reg, "aws_transfer_server_info",
                "Transfer Family server metadata (value 1).",
                SERVER_INFO_LABELS),
            server_online: igauge(reg, "aws_transfer_server_online",
                "1 when the Transfer API reports the server State ONLINE.",
                &["server_id"]),
            server_logging_configured: igauge(reg, "aws_transfer_server_logging_configured",
                "Logging mechanism of a server (logging_role|structured|none), value 1.",
                &["server_id", "mechanism"]),
            server_users: igauge(reg, "aws_transfer_server_users",
                "Users configured on the server (opt-in; ListUsers).",
                &["server_id"]),
            endpoint_up: igauge(reg, "aws_transfer_endpoint_up",
                "1 when the last reachability probe of the endpoint succeeded.",
                &["server_id", "endpoint", "port"]),
            endpoint_probe_duration: gauge(reg, "aws_transfer_endpoint_probe_duration_seconds",
                "Duration of the last reachability probe.",
                &["server_id", "endpoint", "port"]),
            endpoint_probe_failures: counter(reg, group, "aws_transfer_endpoint_probe_failures_total",
                "Failed reachability probes, by reason (dns|refused|connect_timeout|banner_timeout|bad_banner|tls).",
                &["server_id", "reason"]),
            build_info: igauge(reg, "aws_transfer_exporter_build_info",
                "Exporter build metadata (value 1).",
                &["version", "revision"]),
            unparsed_events: counter(reg, group, "aws_transfer_exporter_unparsed_events_total",
                "Log messages that could not be parsed, by input family and reason.",
                &["format", "reason"]),
            label_overflow: counter(reg, group, "aws_transfer_exporter_label_overflow_total",
                "Label values folded into ~other because a cardinality cap was reached, by label.",
                &["label"]),
            unattributed_events: counter(reg, group, "aws_transfer_exporter_unattributed_events_total",
                "Server events whose user could not be attributed (no user field, stream or session).",
                &["server_id"]),
            legacy_duplicates: counter(reg, group, "aws_transfer_exporter_legacy_duplicates_skipped_total",
                "Legacy text lines not counted because the server also logs every event as structured JSON to a polled group.",
                &["server_id"]),
            api_calls: counter(reg, group, "aws_transfer_exporter_api_calls_total",
                "AWS API calls by operation and outcome (success|throttled|denied|not_found|transient|error).",
                &["operation", "outcome"]),
            api_call_duration: histogram(reg, "aws_transfer_exporter_api_call_duration_seconds",
                "AWS API call latency.", &["operation"], API_BUCKETS),
            target_up: igauge(reg, "aws_transfer_exporter_target_up",
                "1 when the target's last call of the AWS API (logs|transfer) succeeded, 0 when it failed.",
                &["target", "api"]),
            events_read: counter(reg, group, "aws_transfer_exporter_events_read_total",
                "Log events read from CloudWatch Logs, by log group.",
                &["log_group"]),
            events_duplicate: counter(reg, group, "aws_transfer_exporter_events_duplicate_total",
                "Log events skipped because their eventId was already counted.",
                &["log_group"]),
            events_late: counter(reg, group, "aws_transfer_exporter_events_late_total",
                "Log events that became visible after the late-arrival window had passed them; not counted in product metrics.",
                &["log_group"]),
            poll_duration: histogram(reg, "aws_transfer_exporter_poll_duration_seconds",
                "Duration of one poll round of one log group.", &["log_group"], POLL_BUCKETS),
            ingestion_delay: histogram(reg, "aws_transfer_exporter_ingestion_delay_seconds",
                "How late events became visible: ingestionTime minus the event's timestamp, observed once per event when first read.",
                &["log_group"], DELAY_BUCKETS),
            poll_errors: counter(reg, group, "aws_transfer_exporter_poll_errors_total",
                "Failed poll rounds, by log group and error kind.",
                &["log_group", "kind"]),
            log_group_lag: gauge(reg, "aws_transfer_exporter_log_group_lag_seconds",
                "Now (the scrape) minus the timestamp of the newest event counted in the group; grows while polling fails.",
                &["log_group"]),
            last_successful_poll: gauge(reg, "aws_transfer_exporter_last_successful_poll_timestamp_seconds",
                "Time of the last successful poll round of the group (Unix seconds).",
                &["log_group"]),
            since_last_successful_poll: gauge(reg, "aws_transfer_exporter_log_group_seconds_since_last_successful_poll",
                "Now (the scrape) minus the last successful poll round of the group (or the start of polling it, before the first success).",
                &["log_group"]),
            log_group_last_event: gauge(reg, "aws_transfer_exporter_log_group_last_event_timestamp_seconds",
                "Timestamp of the newest event counted in the group (Unix seconds).",
                &["log_group"]),
            log_groups: {
                let g = IntGauge::new("aws_transfer_exporter_log_groups", "Log groups being polled.")
                    .expect("valid metric definition");
                reg.register(Box::new(g.clone())).expect("metric registered once");
                g
            },
            poll_interval: {
                let g = prometheus::Gauge::new("aws_transfer_exporter_poll_interval_seconds",
                    "Effective poll interval per group; above the configured one when the API budget cannot cover every group.")
                    .expect("valid metric definition");
                reg.register(Box::new(g.clone())).expect("metric registered once");
                g
            },
            state_writes: counter(reg, group, "aws_transfer_exporter_state_writes_total",
                "State-file writes, by outcome (success|failure).",
                &["outcome"]),
            state_write_duration: histogram(reg, "aws_transfer_exporter_state_write_duration_seconds",
                "Successful state writes: snapshot, encoding and durable write, by kind (whole: the state file rewritten; record: a journal record appended).",
                &["kind"], STATE_WRITE_BUCKETS),
            guard: Mutex::new(LabelGuard::new(limits)),
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), REVISION])
            .set(1);
        m
    }

    /// Changes the label caps (a reload). Values already admitted keep
    /// their series (removing them would reset counters); a lower cap only
    /// stops new values, which fold into `~other` until the cap has room.
    pub fn set_limits(&self, limits: Limits) {
        self.with_guard(|g| g.limits = limits);
    }

    /// The label caps in force.
    pub fn limits(&self) -> Limits {
        self.with_guard(|g| g.limits)
    }

    /// Runs `f` with the label guard locked.
    pub fn with_guard<R>(&self, f: impl FnOnce(&mut LabelGuard) -> R) -> R {
        let mut g = self.guard.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    /// Bounded, cleaned user label value for `server`, counting overflow.
    /// Borrows (no allocation on the per-event path) unless the name held a
    /// character [`sanitize_label_value`] replaces.
    pub fn user_label<'a>(&self, server: &str, user: &'a str) -> Cow<'a, str> {
        let (v, overflowed) = self.with_guard(|g| g.user(server, user));
        if overflowed {
            self.label_overflow.with_label_values(&["user"]).inc();
        }
        v
    }

    /// Bounded, cleaned id label value (`kind` is the label name), counting
    /// overflow.
    pub fn id_label<'a>(&self, kind: &'static str, id: &'a str) -> Cow<'a, str> {
        let (v, overflowed) = self.with_guard(|g| g.id(kind, id));
        if overflowed {
            self.label_overflow.with_label_values(&[kind]).inc();
        }
        v
    }

    /// Sets the ARN-derived `aws_transfer_server_info` series of a server
    /// unless one exists already (the Transfer API's fuller view wins).
    pub fn ensure_server_info(&self, server_id: &str, region: &str, account_id: &str) {
        let server_id_label = sanitize_label_value(server_id);
        let exists = self.server_info.collect().iter().any(|mf| {
            mf.get_metric().iter().any(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == "server_id" && l.value() == server_id_label)
            })
        });
        if !exists {
            self.set_server_info(server_id, region, account_id, ["", "", "", ""]);
        }
    }

    /// Sets `aws_transfer_server_info` for a server, replacing any earlier
    /// series of the same server (e.g. the ARN-only one once the Transfer API
    /// has described it). `details` are the last four labels.
    pub fn set_server_info(
        &self,
        server_id: &str,
        region: &str,
        account_id: &str,
        details: [&str; 4],
    ) {
        // Region and account come from a resource ARN in the log: clean
        // them like every other label value (ids from the Transfer API
        // pass unchanged).
        let clean = [
            server_id, region, account_id, details[0], details[1], details[2], details[3],
        ]
        .map(sanitize_label_value);
        let values: [&str; 7] = std::array::from_fn(|i| &*clean[i]);
        // Remove stale series of this server: gather the family and drop
        // every series whose server_id matches but whose labels differ.
        for mf in self.server_info.collect() {
            for metric in mf.get_metric() {
                let labels: Vec<&str> = SERVER_INFO_LABELS
                    .iter()
                    .map(|name| {
                        metric
                            .get_label()
                            .iter()
                            .find(|l| l.name() == *name)
                            .map_or("", |l| l.value())
                    })
                    .collect();
                if labels[0] == values[0] && labels != values {
                    let _ = self.server_info.remove_label_values(&labels);
                }
            }
        }
        self.server_info.with_label_values(&values).set(1);
    }
}

impl Metrics {
    /// The registry every family is registered on.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every counter family, for restoring saved values.
    fn counter_vecs(&self) -> Vec<&IntCounterVec> {
        vec![
            &self.events,
            &self.errors,
            &self.sessions,
            &self.files,
            &self.bytes,
            &self.connector_transfers,
            &self.connector_bytes,
            &self.connector_errors,
            &self.as2_messages,
            &self.as2_errors,
            &self.workflow_executions,
            &self.endpoint_probe_failures,
            &self.unparsed_events,
            &self.label_overflow,
            &self.unattributed_events,
            &self.legacy_duplicates,
            &self.api_calls,
            &self.events_read,
            &self.events_duplicate,
            &self.events_late,
            &self.poll_errors,
            &self.state_writes,
        ]
    }

    /// Resumes counters from saved values (at start, before anything is
    /// counted), so a restart is not a counter reset. Saved user and server
    /// label values are admitted to the label guard first, so the caps keep
    /// counting them. Series of unknown families (a metric renamed between
    /// versions, another source's self-metrics) or with other label names
    /// are skipped and their number returned.
    pub fn restore_counters(&self, saved: &[crate::state::SavedFamily]) -> usize {
        let vecs: HashMap<&str, &IntCounterVec> = self
            .counter_vecs()
            .into_iter()
            .map(|v| (v.name(), v))
            .collect();
        let mut skipped = 0;
        for f in saved {
            let Some(vec) = vecs.get(f.name.as_str()) else {
                skipped += f.series.len();
                continue;
            };
            let pos = |name: &str| f.labels.iter().position(|l| l == name);
            let (server_at, user_at) = (pos("server_id"), pos("user"));
            for s in &f.series {
                if s.labels.len() != f.labels.len() {
                    skipped += 1;
                    continue;
                }
                if let Some(server) = server_at.map(|i| &*s.labels[i]) {
                    let _ = self.id_label("server_id", server);
                    if let Some(user) = user_at.map(|i| &*s.labels[i]) {
                        let _ = self.user_label(server, user);
                    }
                }
                if !vec.restore(&f.labels, &s.labels, s.value) {
                    skipped += 1;
                }
            }
        }
        skipped
    }

    /// Copies every value for a scrape: the store's counter families and
    /// every other family of the registry, at one instant. This is what
    /// runs while counting is paused; [`snapshot::Copy::finish`] does the
    /// rest after.
    pub fn copy_values(&self) -> snapshot::Copy {
        let own = self
            .counter_vecs()
            .into_iter()
            .map(|v| (v.0.clone(), v.0.copy()))
            .collect();
        let others = store::skip_group_while(self.group, || self.registry.gather());
        snapshot::Copy::new(own, others)
    }

    /// A snapshot of every family now (without pausing counting).
    pub fn snapshot(&self) -> Snapshot {
        self.copy_values().finish()
    }
}

/// Renders `reg` in the Prometheus text exposition format.
pub fn render(reg: &Registry) -> String {
    render_families(&reg.gather())
}

/// Renders gathered families in the Prometheus text exposition format.
pub fn render_families(families: &[prometheus::proto::MetricFamily]) -> String {
    let mut buf = Vec::with_capacity(16 * 1024);
    TextEncoder::new()
        .encode(families, &mut buf)
        .expect("text encoding into a Vec cannot fail");
    String::from_utf8(buf).expect("exposition is UTF-8")
}

/// Content-Type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    /// A reload changes the caps: a higher one admits new values, a lower
    /// one keeps the values already admitted (their series live on) and
    /// folds new ones.
    #[test]
    fn limits_change_at_run_time_without_dropping_admitted_values() {
        let reg = Registry::new();
        let caps = |users| Limits {
            max_users_per_server: users,
            max_ids: 10,
        };
        let m = Metrics::new(&reg, caps(1));
        // (cap set before, user, label value given)
        let steps: &[(usize, &str, &str)] = &[
            (1, "a", "a"),
            (1, "b", OVERFLOW_LABEL),
            (3, "b", "b"),
            (3, "c", "c"),
            (1, "a", "a"),
            (1, "c", "c"),
            (1, "d", OVERFLOW_LABEL),
        ];
        for &(cap, user, want) in steps {
            m.set_limits(caps(cap));
            assert_eq!(m.limits().max_users_per_server, cap);
            assert_eq!(m.user_label("s-1", user), want, "cap {cap}, user {user}");
        }
    }

    #[test]
    fn guard_caps_users_per_server_and_counts_overflow() {
        let reg = Registry::new();
        let m = Metrics::new(
            &reg,
            Limits {
                max_users_per_server: 2,
                max_ids: 10,
            },
        );
        assert_eq!(m.user_label("s-1", "a"), "a");
        assert_eq!(m.user_label("s-1", "b"), "b");
        assert_eq!(m.user_label("s-1", "a"), "a");
        assert_eq!(m.user_label("s-1", "c"), OVERFLOW_LABEL);
        assert_eq!(m.user_label("s-2", "c"), "c", "the cap is per server");
        assert_eq!(m.user_label("s-1", ""), "", "empty user takes no room");
        assert_eq!(m.label_overflow.with_label_values(&["user"]).get(), 1);
    }

    /// The label rule, character class by character class. Each row prints
    /// its input on failure.
    #[test]
    fn sanitize_replaces_every_control_character_one_for_one() {
        const R: char = LABEL_REPLACEMENT;
        let cases: &[(&str, String)] = &[
            ("jdoe", "jdoe".into()),
            (
                "partner.one@example-co_2",
                "partner.one@example-co_2".into(),
            ),
            ("", "".into()),
            ("jd\0oe", format!("jd{R}oe")),
            ("jd\noe", format!("jd{R}oe")),
            ("jd\r\noe", format!("jd{R}{R}oe")),
            ("jd\toe", format!("jd{R}oe")),
            ("\x1b[31mred\x1b[0m", format!("{R}[31mred{R}[0m")),
            ("del\x7f", format!("del{R}")),
            ("c1\u{80}\u{9b}31m\u{9f}", format!("c1{R}{R}31m{R}")),
            ("line\u{2028}para\u{2029}", format!("line{R}para{R}")),
            ("bidi\u{202e}txt.exe\u{202c}", format!("bidi{R}txt.exe{R}")),
            (
                "iso\u{2066}x\u{2069}\u{200e}\u{200f}",
                format!("iso{R}x{R}{R}{R}"),
            ),
            // Other non-ASCII text is kept as logged.
            ("müller", "müller".into()),
            ("用户", "用户".into()),
            ("already\u{fffd}", "already\u{fffd}".into()),
        ];
        let mut failures = Vec::new();
        for (input, want) in cases {
            let got = sanitize_label_value(input);
            if got != *want {
                failures.push(format!("input {input:?}: want {want:?}, got {got:?}"));
            }
            if got.chars().any(is_unsafe_in_label) {
                failures.push(format!("input {input:?}: output {got:?} still unsafe"));
            }
            if !input.chars().any(is_unsafe_in_label) && matches!(got, Cow::Owned(_)) {
                failures.push(format!("input {input:?}: clean value was copied"));
            }
        }
        // Every Cc character, exhaustively.
        for c in (0u32..=0x9f)
            .filter_map(char::from_u32)
            .filter(|c| c.is_control())
        {
            let v = format!("a{c}b");
            if sanitize_label_value(&v) != format!("a{R}b") {
                failures.push(format!("control {:#x} kept", c as u32));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// The guard cleans what it admits, counts cleaned values against the
    /// cap, and answers `is_admitted` for the logged (raw) name.
    #[test]
    fn guard_cleans_values_and_caps_the_cleaned_value() {
        let reg = Registry::new();
        let m = Metrics::new(
            &reg,
            Limits {
                max_users_per_server: 1,
                max_ids: 10,
            },
        );
        let s = m.id_label("server_id", "s-1\n");
        assert_eq!(s, "s-1\u{fffd}");
        assert_eq!(m.user_label(&s, "jd\0oe"), "jd\u{fffd}oe");
        assert_eq!(
            m.user_label(&s, "jd\u{1b}oe"),
            "jd\u{fffd}oe",
            "same cleaned value: no second place taken"
        );
        assert_eq!(m.label_overflow.with_label_values(&["user"]).get(), 0);
        assert!(m.with_guard(|g| g.is_admitted(&s, "jd\x7foe")));
        assert!(
            !m.with_guard(|g| g.is_admitted(&s, "jd_oe")),
            "no collision with a real name"
        );
        m.ensure_server_info("s-\x1b[2J", "eu-\nwest-1", "1111\u{0}");
        let text = render(&reg);
        assert!(
            text.contains(
                "aws_transfer_server_info{account_id=\"1111\u{fffd}\",domain=\"\",\
                 endpoint_type=\"\",identity_provider_type=\"\",protocols=\"\",\
                 region=\"eu-\u{fffd}west-1\",server_id=\"s-\u{fffd}[2J\"} 1"
            ),
            "{text}"
        );
    }

    #[test]
    fn server_info_replaces_the_arn_only_series() {
        let reg = Registry::new();
        let m = Metrics::new(&reg, Limits::default());
        m.set_server_info("s-1", "eu-west-1", "111122223333", ["", "", "", ""]);
        m.set_server_info(
            "s-1",
            "eu-west-1",
            "111122223333",
            ["PUBLIC", "SFTP", "SERVICE_MANAGED", "S3"],
        );
        let text = render(&reg);
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("aws_transfer_server_info{"))
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert!(lines[0].contains("protocols=\"SFTP\""), "{}", lines[0]);
    }

    #[test]
    fn every_family_renders_valid_names() {
        let reg = Registry::new();
        let _m = Metrics::new(&reg, Limits::default());
        let text = render(&reg);
        assert!(text.contains("aws_transfer_exporter_build_info{"), "{text}");
    }
}
