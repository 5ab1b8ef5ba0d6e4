//! Every default of the exporter, in one place, each with the reason for
//! its value. The modules that use a default re-export it under its old
//! name; the config checker fills unset keys from here.

use std::time::Duration;

// ---- CloudWatch Logs polling (targets)

/// Default log group name prefix: where Transfer Family's logging role writes.
pub const DEFAULT_GROUP_PREFIX: &str = "/aws/transfer/";

/// How far back a group seen for the first time is read. Ten minutes shows
/// recent failures right after a deploy without replaying days of history
/// into counters (which would make every rate() spike).
pub const DEFAULT_INITIAL_LOOKBACK: Duration = Duration::from_secs(10 * 60);

/// How far each poll reaches back behind the last checkpoint for events that
/// became visible late. CloudWatch usually makes events searchable within
/// seconds, sometimes a minute or two; five minutes covers that with margin
/// while keeping the remembered ids (one per event in the window) small.
pub const DEFAULT_LATE_ARRIVAL_WINDOW: Duration = Duration::from_secs(5 * 60);

/// How often each group is polled. Failures show up within this plus the
/// scrape interval; each poll of each group costs at least one API call from
/// the shared budget, so shorter intervals only pay off with few groups.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// The least each poll reads behind its checkpoint, whatever the delay
/// estimate says. `ingestionTime` does not include the moment between
/// ingestion and FilterLogEvents returning the event; two seconds covers
/// that, and at the default 10 s poll interval costs one re-read in five.
/// Events the overlap misses are still counted, by the sweep.
pub const DEFAULT_OVERLAP_FLOOR: Duration = Duration::from_secs(2);

/// How often each group's stretch whose late-arrival window has closed is
/// swept (read once more). Each sweep costs at least one call, a sixth of
/// what the polls of a minute cost at the default interval; remembered ids
/// cover about the window plus two sweep intervals, and an event the polls'
/// overlap missed is counted up to the window plus this after its
/// timestamp. A minute keeps all three small.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

// The default sweep reach is not a constant: it is each target's
// late-arrival window plus the sweep interval, the least reach that misses
// no event visible within the window (`TargetSpec::timing`).

/// How often group prefixes are listed again. New Transfer servers are rare;
/// five minutes picks them up the same coffee break without spending the
/// budget (one DescribeLogGroups call per 50 groups per prefix).
pub const DEFAULT_DISCOVERY_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Events per FilterLogEvents page: the API maximum, so a window costs as
/// few calls of the shared budget as possible.
pub const DEFAULT_PAGE_LIMIT: i32 = 10_000;

/// API calls per second per account+Region (FilterLogEvents +
/// DescribeLogGroups). FilterLogEvents' quota is account-wide: 5 TPS in some
/// Regions, 10 in most, 25 in us-east-1, and it is shared with the console
/// and every other tool. Two per second leaves more than half of the
/// smallest quota to everyone else.
pub const DEFAULT_API_RATE_PER_SECOND: f64 = 2.0;

/// How often the state file is written when something changed. A crash loses
/// at most this much progress, which is re-read (and counted again) by the
/// next process; writing more often costs an fsync each time.
pub const DEFAULT_STATE_FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// Default state file path (relative to the working directory).
pub const DEFAULT_STATE_PATH: &str = ".state/aws-transfer-exporter.json";

// ---- Transfer API inventory

/// Default time between inventory refreshes. Servers are created, stopped
/// or reconfigured rarely; five minutes finds a change well inside any
/// alert's `for:` window and costs 1 + (number of servers) calls.
pub const DEFAULT_INVENTORY_INTERVAL: Duration = Duration::from_secs(300);

// ---- endpoint probe

/// Default time between probe rounds. A minute matches a typical scrape
/// interval and keeps the probe far below anything a server would notice
/// (one TCP connection per endpoint per minute).
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(60);

/// Default bound on DNS resolution plus TCP connect. A silently dropped SYN
/// (security group, NACL) only shows as this timeout; 5 s is far above a
/// healthy connect time from anywhere in a Region and short enough that
/// one round stays well inside the interval.
pub const DEFAULT_PROBE_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default bound on reading the greeting (and the TLS handshake) once
/// connected. OpenSSH sends its identification at once; 5 s leaves room for
/// a loaded server without hiding a hung one.
pub const DEFAULT_PROBE_BANNER_TIMEOUT: Duration = Duration::from_secs(5);

// ---- session attribution

/// Default number of sessions remembered. A busy server runs a few thousand
/// sessions an hour; 100k entries of ~100 bytes cost ~10 MB at most.
pub const DEFAULT_SESSION_CACHE_SIZE: usize = 100_000;

/// Default lifetime of a session-id → user entry, in event time. Must be at
/// least the server's idle timeout plus the longest session; Transfer Family
/// sessions rarely last more than hours, so 12 h errs on the long side.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

// ---- landing page

/// Default number of recent failures kept for the landing page.
pub const DEFAULT_RECENT_FAILURES: usize = 50;

// ---- label limits

/// Default cap on distinct `user` label values per server. Large enough for
/// the partner lists we have seen (tens to a few hundred users per server),
/// small enough that a scan cannot grow the series count past
/// cap × (families with a user label) × causes per server.
pub const DEFAULT_MAX_USERS_PER_SERVER: usize = 500;

/// Default cap on distinct values of each id label (server, connector,
/// workflow, log group) taken from log content. Ids are written by AWS, not
/// strangers, but a log group can hold anything; this is the backstop.
pub const DEFAULT_MAX_IDS: usize = 2000;

// ---- shutdown

/// How long shutdown may take after the first signal before the daemon gives
/// up waiting for tasks and exits anyway. Kubernetes and systemd send SIGKILL
/// after 30 s and 90 s by default; 10 s leaves room for the state file and
/// an in-flight scrape and keeps restarts quick.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

// ---- web, log, and the checker's bounds

/// Default listen address. The Prometheus default-port allocation list has
/// had its exporter block (9100–9999) fully allocated since 2023; exporters
/// registered since then sit outside it. 29190 is in none of the list's
/// entries (the block, the "outside the standard ranges" table), is below the
/// Linux ephemeral range (32768+), so the kernel never hands it out to an
/// outgoing connection, and no well-known service uses it.
pub const DEFAULT_LISTEN_ADDRESS: &str = ":29190";

/// Default metrics path: what every Prometheus scrape config assumes.
pub const DEFAULT_TELEMETRY_PATH: &str = "/metrics";

/// Default log level: one line per lifecycle event and per problem, quiet
/// while things work.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// Longest late-arrival window accepted. Remembered event ids are kept for
/// the window, so memory grows with it; CloudWatch makes events visible
/// within minutes, and a day is far beyond anything observed.
pub const MAX_LATE_ARRIVAL_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Shortest poll interval accepted: below this, the API budget is spent on
/// empty polls and the quota shared with people in the console runs out.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// FilterLogEvents accepts `limit` from 1 to 10,000.
pub const MAX_PAGE_LIMIT: i32 = 10_000;

/// Name of the target built from flags alone (no config file targets).
pub const FLAG_TARGET_NAME: &str = "default";

/// How long the start waits for a target's first inventory view before it
/// polls without one. The Transfer API answers in well under a second; an
/// unreachable one (no route, no VPC endpoint) must not hold polling up.
pub const FIRST_INVENTORY_TIMEOUT: Duration = Duration::from_secs(10);
