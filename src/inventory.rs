//! Server inventory from the Transfer Family API: what the logs cannot say.
//!
//! Why: a stopped server, or one whose logging was never configured, writes
//! nothing, and an exporter that only reads logs would show a reassuring
//! silence exactly when it is blind. The inventory asks the Transfer API
//! (ListServers, every page, then DescribeServer per server), with the same
//! credentials, Region and assumed role as the log target it belongs to, on
//! an interval, and exports:
//!
//! - `aws_transfer_server_info{server_id, region, account_id, endpoint_type,
//!   protocols, identity_provider_type, domain}` 1;
//! - `aws_transfer_server_online{server_id}`: 1 when State is ONLINE, else 0;
//! - `aws_transfer_server_logging_configured{server_id, mechanism}` 1, with
//!   mechanism `logging_role`, `structured` or `none`. A server with **both**
//!   a logging role and structured destinations has **two** series (one per
//!   mechanism): AWS then delivers to both places, and each can break on its
//!   own (the role loses its trust, a destination group is deleted), so each
//!   is a separate fact. "Blind to this server" is simply
//!   `aws_transfer_server_logging_configured{mechanism="none"} == 1`;
//! - `aws_transfer_server_users{server_id}` (opt-in, see [`UsersMode`]).
//!
//! Structured log destinations (log-group ARNs, possibly ending in `:*`)
//! become log-group names handed to the poller, so a user who sends logs to
//! a custom-named group needs no extra config.
//!
//! Every call is counted in `aws_transfer_exporter_api_calls_total{operation,
//! outcome}` and timed in `aws_transfer_exporter_api_call_duration_seconds`.
//! Failures are never fatal: a failed refresh keeps the last known view.
//! Transfer API calls do not consume the CloudWatch Logs budget (another
//! service, other quotas); the default interval keeps them to a handful of
//! calls every few minutes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_transfer::config::http::HttpResponse;
use aws_sdk_transfer::error::{ProvideErrorMetadata, SdkError};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::aws::call::TRANSFER_API_RATE_PER_SECOND;
use crate::aws::paginate::paginate;
use crate::aws::sdk::TargetConfig;
use crate::aws::transfer::{
    ListedServer, SdkTransfer, TransferApi, OP_DESCRIBE_SERVER, OP_LIST_SERVERS, OP_LIST_USERS,
};
use crate::aws::{Api, ApiHealth, CallError, Caller, TokenBucket};
use crate::metrics::Metrics;

pub use crate::config::defaults::DEFAULT_INVENTORY_INTERVAL as DEFAULT_INTERVAL;

/// Most pages followed in one ListServers or ListUsers listing: a
/// backstop against a service that keeps returning a token (at 1000 a page,
/// far beyond any account's quota of servers or users).
const MAX_PAGES: usize = 1000;

/// Logging mechanisms, the values of the `mechanism` label.
pub const MECHANISMS: [&str; 3] = ["logging_role", "structured", "none"];

/// How `aws_transfer_server_users` is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsersMode {
    /// Not exported (the default: one more series per server that most
    /// dashboards do not need).
    Off,
    /// From DescribeServer's `UserCount`: no extra call.
    UserCount,
    /// By paging through ListUsers for every server: one or more extra
    /// calls per server and refresh, for when `UserCount` is absent or not
    /// trusted. A failing ListUsers is counted and logged, never fatal; the
    /// last known value is kept.
    ListUsers,
}

impl UsersMode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            UsersMode::Off => "off",
            UsersMode::UserCount => "user_count",
            UsersMode::ListUsers => "list_users",
        }
    }
}

/// Validated inventory settings.
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryConfig {
    pub enabled: bool,
    pub interval: Duration,
    pub users: UsersMode,
    pub add_log_groups: bool,
    pub skip_legacy_duplicates: bool,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        InventoryConfig {
            enabled: true,
            interval: DEFAULT_INTERVAL,
            users: UsersMode::Off,
            add_log_groups: true,
            skip_legacy_duplicates: true,
        }
    }
}

/// What the exporter knows about one server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerSummary {
    pub server_id: String,
    pub region: String,
    pub account_id: String,
    /// The API's State (ONLINE, OFFLINE, STARTING, STOPPING, …).
    pub state: String,
    pub online: bool,
    /// PUBLIC | VPC | VPC_ENDPOINT.
    pub endpoint_type: String,
    /// SFTP, FTP, FTPS, AS2, in the API's order.
    pub protocols: Vec<String>,
    pub identity_provider_type: String,
    /// S3 | EFS.
    pub domain: String,
    pub logging_role: Option<String>,
    /// As the API gives them: log-group ARNs.
    pub structured_log_destinations: Vec<String>,
    /// Elastic IPs of an internet-facing VPC endpoint.
    pub address_allocation_ids: Vec<String>,
    pub user_count: Option<i64>,
}

impl ServerSummary {
    /// Logging mechanisms in effect: one or two of `logging_role`,
    /// `structured`, or just `none`.
    pub fn mechanisms(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if self.logging_role.as_deref().is_some_and(|r| !r.is_empty()) {
            m.push("logging_role");
        }
        if !self.structured_log_destinations.is_empty() {
            m.push("structured");
        }
        if m.is_empty() {
            m.push("none");
        }
        m
    }

    /// Whether the public hostname reaches this server: PUBLIC endpoints,
    /// and VPC endpoints with Elastic IPs attached.
    pub fn internet_facing(&self) -> bool {
        self.endpoint_type == "PUBLIC"
            || (self.endpoint_type == "VPC" && !self.address_allocation_ids.is_empty())
    }

    /// Log-group names of the structured destinations.
    pub fn log_groups(&self) -> Vec<String> {
        self.structured_log_destinations
            .iter()
            .filter_map(|a| log_group_name(a))
            .collect()
    }

    fn info_labels(&self) -> [String; 7] {
        [
            self.server_id.clone(),
            self.region.clone(),
            self.account_id.clone(),
            self.endpoint_type.clone(),
            self.protocols.join(","),
            self.identity_provider_type.clone(),
            self.domain.clone(),
        ]
    }
}

/// Servers whose legacy text lines duplicate structured events that the
/// exporter polls (reference §8.4): a logging role *and* a structured
/// destination that is a log group, which the poller reads because
/// `add_log_groups` hands it over. AWS then delivers every event to both.
/// With `add_log_groups` off the exporter cannot know the structured group is
/// polled, so nothing is skipped; with `skip_legacy_duplicates` off neither.
pub fn legacy_duplicate_servers(servers: &[ServerSummary], cfg: &InventoryConfig) -> Vec<String> {
    if !(cfg.add_log_groups && cfg.skip_legacy_duplicates) {
        return Vec::new();
    }
    servers
        .iter()
        .filter(|s| {
            s.logging_role.as_deref().is_some_and(|r| !r.is_empty())
                && s.structured_log_destinations
                    .iter()
                    .any(|d| log_group_name(d).is_some())
        })
        .map(|s| s.server_id.clone())
        .collect()
}

/// The log-group name in a structured log destination:
/// `arn:aws:logs:<region>:<account>:log-group:<name>[:*]` → `<name>`.
/// A bare name is returned as is. `None` for anything else (counted by the
/// caller's log line, never guessed at).
pub fn log_group_name(dest: &str) -> Option<String> {
    let dest = dest.trim();
    if !dest.starts_with("arn:") {
        return (!dest.is_empty() && !dest.contains(':')).then(|| dest.to_owned());
    }
    // arn:partition:service:region:account:resource — the resource may
    // itself contain ':' (log-group:NAME:*), so split at most 6 ways.
    let parts: Vec<&str> = dest.splitn(6, ':').collect();
    if parts.len() != 6 || parts[2] != "logs" {
        return None;
    }
    let rest = parts[5].strip_prefix("log-group:")?;
    let name = rest.strip_suffix(":*").unwrap_or(rest);
    (!name.is_empty() && !name.contains(':')).then(|| name.to_owned())
}

/// The account id field of an ARN (`arn:aws:transfer:eu-west-1:111122223333:server/s-…`).
fn arn_account(arn: &str) -> &str {
    arn.split(':').nth(4).unwrap_or("")
}

/// Maps an SDK error to the bounded `outcome` label (the one map of
/// [`crate::aws::errors`]).
pub fn outcome<E>(err: &SdkError<E, HttpResponse>) -> &'static str
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    crate::aws::errors::classify(err).as_str()
}

/// An inventory refresh that failed as a whole (ListServers failed).
#[derive(Debug, thiserror::Error)]
#[error("ListServers failed ({outcome}): {message}")]
pub struct RefreshError {
    pub outcome: &'static str,
    pub message: String,
}

impl From<CallError> for RefreshError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Api(e) => RefreshError {
                outcome: e.kind.as_str(),
                message: e.message,
            },
            CallError::Cancelled => RefreshError {
                outcome: crate::aws::ErrorKind::Other.as_str(),
                message: "shutting down".to_owned(),
            },
        }
    }
}

/// The inventory of one target (one account + Region).
pub struct Inventory {
    api: Arc<dyn TransferApi>,
    /// Counted, paced calls of this target to the Transfer API, reporting to
    /// its health entry.
    calls: Caller,
    /// Never cancelled: a refresh stops by being dropped (see [`spawn`]).
    cancel: CancellationToken,
    region: String,
    metrics: Arc<Metrics>,
    cfg: InventoryConfig,
    /// Last known view, by server id: series of servers that disappear are
    /// removed with the exact labels they were set with.
    known: HashMap<String, ServerSummary>,
}

impl Inventory {
    /// Uses the target's SDK config (credentials, Region, assumed role,
    /// endpoint URL), so the inventory sees what the log poller sees. A
    /// bare [`aws_config::SdkConfig`] is target
    /// [`crate::aws::sdk::UNNAMED_TARGET`].
    pub fn new<C: TargetConfig + ?Sized>(
        sdk: &C,
        metrics: Arc<Metrics>,
        cfg: InventoryConfig,
    ) -> Self {
        let conf = sdk.sdk_config();
        let calls = Caller::new(
            sdk.target_name(),
            Api::Transfer,
            Arc::new(TokenBucket::new(TRANSFER_API_RATE_PER_SECOND)),
            metrics.clone(),
        );
        let region = conf.region().map(|r| r.to_string()).unwrap_or_default();
        Inventory::with_api(
            Arc::new(SdkTransfer::from_sdk(conf)),
            calls,
            &region,
            metrics,
            cfg,
        )
    }

    /// An inventory over any [`TransferApi`] (tests, other clients).
    pub fn with_api(
        api: Arc<dyn TransferApi>,
        calls: Caller,
        region: &str,
        metrics: Arc<Metrics>,
        cfg: InventoryConfig,
    ) -> Self {
        Inventory {
            api,
            calls,
            cancel: CancellationToken::new(),
            region: region.to_owned(),
            metrics,
            cfg,
            known: HashMap::new(),
        }
    }

    /// Continues from the last view of an inventory it replaces (a reload):
    /// the first refresh removes the series of servers gone since.
    pub fn continuing_from(mut self, servers: &[ServerSummary]) -> Self {
        self.known = servers
            .iter()
            .map(|s| (s.server_id.clone(), s.clone()))
            .collect();
        self
    }

    /// This target's Transfer API health (for the landing page).
    pub fn health(&self) -> &Arc<ApiHealth> {
        self.calls.health()
    }

    /// One refresh: lists every server, describes each, updates the
    /// metrics, and returns the new view (sorted by server id).
    pub async fn refresh(&mut self) -> Result<Vec<ServerSummary>, RefreshError> {
        let listed = self.list_servers().await?;
        let mut out = Vec::with_capacity(listed.len());
        for l in listed {
            let id = l.server_id.clone();
            let mut s = self.describe(&id, &l).await;
            if self.cfg.users == UsersMode::ListUsers {
                s.user_count = self
                    .list_users(&id)
                    .await
                    .or_else(|| self.known.get(&id).and_then(|k| k.user_count));
            }
            out.push(s);
        }
        out.sort_by(|a, b| a.server_id.cmp(&b.server_id));
        self.apply(&out);
        Ok(out)
    }

    async fn list_servers(&self) -> Result<Vec<ListedServer>, RefreshError> {
        let (api, calls, cancel) = (&self.api, &self.calls, &self.cancel);
        let mut all = Vec::new();
        paginate(
            OP_LIST_SERVERS,
            &self.region,
            MAX_PAGES,
            |token| {
                let page = calls.call(OP_LIST_SERVERS, cancel, move || {
                    api.list_servers_page(token.clone())
                });
                async move { page.await.map(|p| (p.servers, p.next_token)) }
            },
            |servers| all.extend(servers),
        )
        .await?;
        Ok(all)
    }

    /// DescribeServer; on failure, what ListServers said (no protocols or
    /// structured destinations) so the server still shows up.
    async fn describe(&self, id: &str, l: &ListedServer) -> ServerSummary {
        let mut s = ServerSummary {
            server_id: id.to_owned(),
            region: self.region.clone(),
            account_id: arn_account(&l.arn).to_owned(),
            state: l.state.clone().unwrap_or_default(),
            endpoint_type: l.endpoint_type.clone().unwrap_or_default(),
            identity_provider_type: l.identity_provider_type.clone().unwrap_or_default(),
            domain: l.domain.clone().unwrap_or_default(),
            logging_role: l.logging_role.clone(),
            user_count: l.user_count,
            ..Default::default()
        };
        let api = &self.api;
        match self
            .calls
            .call(OP_DESCRIBE_SERVER, &self.cancel, || api.describe_server(id))
            .await
        {
            Ok(Some(d)) => {
                s.account_id = arn_account(&d.arn).to_owned();
                if let Some(v) = d.state {
                    s.state = v;
                }
                if let Some(v) = d.endpoint_type {
                    s.endpoint_type = v;
                }
                if let Some(v) = d.identity_provider_type {
                    s.identity_provider_type = v;
                }
                if let Some(v) = d.domain {
                    s.domain = v;
                }
                s.protocols = d.protocols;
                s.logging_role = d.logging_role;
                s.structured_log_destinations = d.structured_log_destinations;
                s.address_allocation_ids = d.address_allocation_ids;
                if let Some(n) = d.user_count {
                    s.user_count = Some(n);
                }
            }
            Ok(None) => {}
            Err(err) => {
                // Counted; the health entry WARNs once per change of state.
                tracing::debug!(server_id = %id, error = %err,
                    "DescribeServer failed; using what ListServers said and the last known details");
                // What only DescribeServer tells comes from the last good
                // view: a transient failure must not turn a server with
                // structured logging into `mechanism="none"` (a false
                // "blind" alert) or drop its protocols from the probe.
                if let Some(k) = self.known.get(id) {
                    s.protocols = k.protocols.clone();
                    s.structured_log_destinations = k.structured_log_destinations.clone();
                    s.address_allocation_ids = k.address_allocation_ids.clone();
                }
            }
        }
        if s.account_id.is_empty() {
            s.account_id = self
                .known
                .get(id)
                .map(|k| k.account_id.clone())
                .unwrap_or_default();
        }
        s.online = s.state == "ONLINE";
        s
    }

    /// Counts a server's users by paging through ListUsers; `None` (counted,
    /// logged) when a call fails.
    async fn list_users(&self, id: &str) -> Option<i64> {
        let (api, calls, cancel) = (&self.api, &self.calls, &self.cancel);
        let mut n = 0i64;
        let listed = paginate(
            OP_LIST_USERS,
            id,
            MAX_PAGES,
            |token| {
                let page = calls.call(OP_LIST_USERS, cancel, move || {
                    api.list_users_page(id, token.clone())
                });
                async move { page.await.map(|p| (p.user_names, p.next_token)) }
            },
            |users| n += users.len() as i64,
        )
        .await;
        match listed {
            Ok(_) => Some(n),
            Err(err) => {
                tracing::debug!(server_id = %id, error = %err,
                    "ListUsers failed; keeping the last known user count");
                None
            }
        }
    }

    /// Sets the metrics for a new view and removes the series of servers
    /// and mechanisms that are gone.
    fn apply(&mut self, servers: &[ServerSummary]) {
        let m = &self.metrics;
        let now: HashMap<String, ServerSummary> = servers
            .iter()
            .map(|s| (s.server_id.clone(), s.clone()))
            .collect();
        remove_gone(m, self.known.values(), &now);
        for s in servers {
            let l = s.info_labels();
            m.set_server_info(&l[0], &l[1], &l[2], [&l[3], &l[4], &l[5], &l[6]]);
            m.server_online
                .with_label_values(&[&s.server_id])
                .set(i64::from(s.online));
            let mechs = s.mechanisms();
            for mech in MECHANISMS {
                if mechs.contains(&mech) {
                    m.server_logging_configured
                        .with_label_values(&[&s.server_id, mech])
                        .set(1);
                } else {
                    let _ = m
                        .server_logging_configured
                        .remove_label_values(&[&s.server_id, mech]);
                }
            }
            match (self.cfg.users, s.user_count) {
                (UsersMode::Off, _) => {}
                (_, Some(n)) => m.server_users.with_label_values(&[&s.server_id]).set(n),
                (_, None) => {}
            }
        }
        self.known = now;
    }
}

/// Removes the series of the `known` servers that are not in `now`, and
/// the info series of those whose info labels changed.
fn remove_gone<'a>(
    m: &Metrics,
    known: impl Iterator<Item = &'a ServerSummary>,
    now: &HashMap<String, ServerSummary>,
) {
    for old in known {
        let id = &old.server_id;
        let new = now.get(id);
        if new.is_none_or(|n| n.info_labels() != old.info_labels()) {
            let l = old.info_labels();
            let l: Vec<&str> = l.iter().map(String::as_str).collect();
            let _ = m.server_info.remove_label_values(&l);
        }
        if new.is_none() {
            let _ = m.server_online.remove_label_values(&[id]);
            let _ = m.server_users.remove_label_values(&[id]);
            for mech in MECHANISMS {
                let _ = m.server_logging_configured.remove_label_values(&[id, mech]);
            }
        }
    }
}

/// Removes every series of `servers` (the last view of an inventory that a
/// reload stopped for good: its target removed, or the inventory off).
pub fn forget_servers(m: &Metrics, servers: &[ServerSummary]) {
    remove_gone(m, servers.iter(), &HashMap::new());
}

/// Receives the log-group names of structured destinations (the full,
/// sorted set on every refresh: the receiver must treat known names as a
/// no-op). The daemon wires this to `Sources::add_groups` of the target.
pub type GroupSink = Arc<dyn Fn(Vec<String>) + Send + Sync>;

/// Spawns the refresh loop on `tracker` and returns the receiver of the
/// latest view (empty until the first refresh succeeds). Refreshes at once,
/// then every `interval`, until `token` is cancelled. A `first` view (a
/// refresh the caller already made, see [`Inventory::refresh`]) is
/// published at once and replaces the immediate refresh.
pub fn spawn(
    tracker: &TaskTracker,
    token: CancellationToken,
    mut inventory: Inventory,
    sink: Option<GroupSink>,
    first: Option<Vec<ServerSummary>>,
) -> watch::Receiver<Arc<Vec<ServerSummary>>> {
    let (tx, rx) = watch::channel(Arc::new(Vec::new()));
    if !inventory.cfg.enabled {
        return rx;
    }
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(inventory.cfg.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if let Some(servers) = first {
            tick.tick().await; // the first tick is immediate: this view is it
            publish(&inventory, sink.as_ref(), &tx, servers);
        }
        let mut failures_in_a_row = 0u32;
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                _ = tick.tick() => {}
            }
            let result = tokio::select! {
                _ = token.cancelled() => break,
                r = inventory.refresh() => r,
            };
            match result {
                Ok(servers) => {
                    failures_in_a_row = 0;
                    publish(&inventory, sink.as_ref(), &tx, servers);
                }
                Err(e) => {
                    failures_in_a_row += 1;
                    // The health entry WARNs once per change of state (with
                    // the fix); this only says what the inventory does.
                    tracing::debug!(region = %inventory.region, failures_in_a_row,
                        error = %e, "inventory refresh failed; keeping the last known view");
                }
            }
        }
        tracing::debug!("inventory stopped");
    });
    rx
}

/// Hands a fresh view's structured log groups to the sink (when
/// `add_log_groups`) and publishes the view.
fn publish(
    inventory: &Inventory,
    sink: Option<&GroupSink>,
    tx: &watch::Sender<Arc<Vec<ServerSummary>>>,
    servers: Vec<ServerSummary>,
) {
    tracing::debug!(region = %inventory.region, servers = servers.len(), "inventory refreshed");
    if let (true, Some(sink)) = (inventory.cfg.add_log_groups, sink) {
        let groups: BTreeSet<String> = servers.iter().flat_map(ServerSummary::log_groups).collect();
        for s in &servers {
            for d in &s.structured_log_destinations {
                if log_group_name(d).is_none() {
                    tracing::warn!(server_id = %s.server_id, destination = %d,
                        "structured log destination is not a log-group ARN; not polled");
                }
            }
        }
        if !groups.is_empty() {
            sink(groups.into_iter().collect());
        }
    }
    let _ = tx.send(Arc::new(servers));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_group_names_from_destinations() {
        let table: &[(&str, Option<&str>)] = &[
            (
                "arn:aws:logs:eu-west-1:111122223333:log-group:/custom/transfer:*",
                Some("/custom/transfer"),
            ),
            (
                "arn:aws:logs:eu-west-1:111122223333:log-group:my-group",
                Some("my-group"),
            ),
            (
                "arn:aws-cn:logs:cn-north-1:111122223333:log-group:/a/b_c.d-e#f:*",
                Some("/a/b_c.d-e#f"),
            ),
            ("/plain/name", Some("/plain/name")),
            ("arn:aws:s3:::bucket", None),
            ("arn:aws:logs:eu-west-1:111122223333:log-group::*", None),
            ("arn:aws:logs:eu-west-1:111122223333:destination:x", None),
            ("", None),
        ];
        for (input, want) in table {
            assert_eq!(log_group_name(input).as_deref(), *want, "input {input:?}");
        }
    }

    #[test]
    fn mechanisms_table() {
        let base = ServerSummary::default();
        let role = Some("arn:aws:iam::1:role/log".to_owned());
        let dest = vec!["arn:aws:logs:r:1:log-group:g:*".to_owned()];
        let table = [
            (None, vec![], vec!["none"]),
            (role.clone(), vec![], vec!["logging_role"]),
            (Some(String::new()), vec![], vec!["none"]),
            (None, dest.clone(), vec!["structured"]),
            (role, dest, vec!["logging_role", "structured"]),
        ];
        for (logging_role, dests, want) in table {
            let s = ServerSummary {
                logging_role: logging_role.clone(),
                structured_log_destinations: dests.clone(),
                ..base.clone()
            };
            assert_eq!(
                s.mechanisms(),
                want,
                "role {logging_role:?} dests {dests:?}"
            );
        }
    }

    #[test]
    fn internet_facing_table() {
        let table = [
            ("PUBLIC", vec![], true),
            ("VPC", vec!["eipalloc-1".to_owned()], true),
            ("VPC", vec![], false),
            ("VPC_ENDPOINT", vec![], false),
        ];
        for (t, eips, want) in table {
            let s = ServerSummary {
                endpoint_type: t.to_owned(),
                address_allocation_ids: eips.clone(),
                ..Default::default()
            };
            assert_eq!(s.internet_facing(), want, "{t} {eips:?}");
        }
    }

    /// Only servers with both mechanisms, a destination the poller reads,
    /// and both switches on have their legacy lines skipped.
    #[test]
    fn legacy_duplicate_servers_table() {
        let server = |id: &str, role: Option<&str>, dests: &[&str]| ServerSummary {
            server_id: id.to_owned(),
            logging_role: role.map(str::to_owned),
            structured_log_destinations: dests.iter().map(|d| d.to_string()).collect(),
            ..Default::default()
        };
        let dest = "arn:aws:logs:eu-west-1:111122223333:log-group:/custom/transfer:*";
        let role = Some("arn:aws:iam::111122223333:role/logging");
        let servers = [
            server("s-both", role, &[dest]),
            server("s-role-only", role, &[]),
            server("s-structured-only", None, &[dest]),
            server("s-empty-role", Some(""), &[dest]),
            server("s-not-a-group", role, &["arn:aws:s3:::bucket"]),
            server("s-none", None, &[]),
        ];
        let on = InventoryConfig::default();
        assert_eq!(legacy_duplicate_servers(&servers, &on), vec!["s-both"]);
        for off in [
            InventoryConfig {
                add_log_groups: false,
                ..on.clone()
            },
            InventoryConfig {
                skip_legacy_duplicates: false,
                ..on.clone()
            },
        ] {
            assert!(
                legacy_duplicate_servers(&servers, &off).is_empty(),
                "{off:?}"
            );
        }
    }

    /// The inventory over a fake [`TransferApi`]: ListServers pages are
    /// followed, every call is counted; an empty credential chain fails the
    /// refresh as `credentials` after one attempt, keeps the last view and
    /// turns `target_up{api="transfer"}` to 0.
    #[tokio::test]
    async fn inventory_over_a_fake_transfer_api() {
        use crate::aws::transfer::{ServerDetails, ServersPage, UserDetails, UsersPage};
        use crate::aws::{ApiError, BoxFuture, ErrorKind};
        use std::sync::atomic::{AtomicBool, Ordering};

        #[derive(Default)]
        struct Fake {
            no_credentials: AtomicBool,
        }
        impl TransferApi for Fake {
            fn list_servers_page(
                &self,
                next_token: Option<String>,
            ) -> BoxFuture<'_, Result<ServersPage, ApiError>> {
                let fail = self.no_credentials.load(Ordering::Relaxed);
                Box::pin(async move {
                    if fail {
                        return Err(ApiError::new(
                            ErrorKind::Credentials,
                            "no credentials found in chain",
                        ));
                    }
                    let (id, next) = match next_token.as_deref() {
                        None => ("s-1", Some("page-2".to_owned())),
                        _ => ("s-2", None),
                    };
                    Ok(ServersPage {
                        servers: vec![ListedServer {
                            server_id: id.to_owned(),
                            ..Default::default()
                        }],
                        next_token: next,
                    })
                })
            }
            fn describe_server<'a>(
                &'a self,
                server_id: &'a str,
            ) -> BoxFuture<'a, Result<Option<ServerDetails>, ApiError>> {
                Box::pin(async move {
                    Ok(Some(ServerDetails {
                        arn: format!("arn:aws:transfer:eu-west-1:111122223333:server/{server_id}"),
                        state: Some("ONLINE".to_owned()),
                        protocols: vec!["SFTP".to_owned()],
                        ..Default::default()
                    }))
                })
            }
            fn list_users_page<'a>(
                &'a self,
                _server_id: &'a str,
                _next_token: Option<String>,
            ) -> BoxFuture<'a, Result<UsersPage, ApiError>> {
                Box::pin(async {
                    Ok(UsersPage {
                        user_names: vec!["a".to_owned(), "b".to_owned()],
                        next_token: None,
                    })
                })
            }
            fn describe_user<'a>(
                &'a self,
                _server_id: &'a str,
                _user_name: &'a str,
            ) -> BoxFuture<'a, Result<Option<UserDetails>, ApiError>> {
                Box::pin(async { Ok(None) })
            }
        }

        let reg = prometheus::Registry::new();
        let m = Arc::new(Metrics::new(&reg, crate::metrics::Limits::default()));
        let fake = Arc::new(Fake::default());
        let calls = Caller::new(
            "prod",
            Api::Transfer,
            Arc::new(TokenBucket::new(1000.0)),
            m.clone(),
        );
        let cfg = InventoryConfig {
            users: UsersMode::ListUsers,
            ..InventoryConfig::default()
        };
        let mut inv = Inventory::with_api(fake.clone(), calls, "eu-west-1", m.clone(), cfg);
        let view = inv.refresh().await.expect("refresh");
        let got: Vec<(&str, &str, bool, Option<i64>)> = view
            .iter()
            .map(|s| {
                (
                    s.server_id.as_str(),
                    s.account_id.as_str(),
                    s.online,
                    s.user_count,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("s-1", "111122223333", true, Some(2)),
                ("s-2", "111122223333", true, Some(2))
            ]
        );
        let calls = |op: &str, outcome: &str| m.api_calls.with_label_values(&[op, outcome]).get();
        assert_eq!(
            (
                calls("ListServers", "success"),
                calls("DescribeServer", "success"),
                calls("ListUsers", "success")
            ),
            (2, 2, 2)
        );
        let up = || m.target_up.with_label_values(&["prod", "transfer"]).get();
        assert_eq!(up(), 1);

        fake.no_credentials.store(true, Ordering::Relaxed);
        let err = inv.refresh().await.expect_err("no credentials");
        assert_eq!(err.outcome, "credentials", "{err}");
        assert_eq!(calls("ListServers", "credentials"), 1, "not retried");
        assert_eq!(up(), 0);
        let failure = inv.health().status().last_error.expect("recorded");
        assert_eq!((failure.kind, failure.count), (ErrorKind::Credentials, 1));
        assert_eq!(
            m.server_online.with_label_values(&["s-1"]).get(),
            1,
            "last view kept"
        );
    }
}
