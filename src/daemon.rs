//! The daemon: config → registry, metrics, pipeline → HTTP server → sources
//! (+ inventory and probe), with owned, cancellable tasks.
//!
//! Startup order: load and validate the config (exit non-zero naming every
//! bad key), set up logging, bind the listen address (exit non-zero if it is
//! taken), serve HTTP at once (`/-/healthy` answers while the sources start;
//! `/-/ready` says 503 until the first round), log exactly one `listening`
//! line per listener with the bound `address` (tests start on port 0 and
//! read it), then
//! start the sources.
//!
//! Shutdown (SIGTERM/SIGINT, see [`crate::shutdown`]): cancel every task,
//! wait for pollers and in-flight scrapes under [`shutdown::DRAIN_DEADLINE`],
//! write the state file, exit 0.

use std::process::ExitCode;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use prometheus::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::ServeArgs;
use crate::config::{self, Config, LogFormat};
use crate::http::{self, AppState, FailureRow, GroupRow, TargetRow, View};
use crate::inventory::{self, Inventory, InventoryConfig, ServerSummary};
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::shutdown;
use crate::source::Sources;
use crate::web;

/// Runs the daemon until a signal; `Ok(SUCCESS)` after a clean shutdown.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let cfg = config::load(&args)?;
    if args.config_check {
        print_summary(&cfg);
        if let Some(path) = &cfg.web_config_file {
            // Reads the certificates too, as startup would.
            let summary = web::Edge::check(path)?;
            println!("  web.config_file: {} ({summary})", path.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    init_tracing(&cfg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("exporter")
        .build()
        .context("cannot start the async runtime")?;
    let code = runtime.block_on(serve(cfg))?;
    // Connections stuck past the drain deadline must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(code)
}

fn print_summary(cfg: &Config) {
    println!("configuration OK");
    for a in &cfg.listen_addresses {
        println!("  listen_address: {a}");
    }
    println!("  telemetry_path: {}", cfg.telemetry_path);
    println!("  state.path: {}", cfg.state_path.display());
    for (i, t) in cfg.targets.iter().enumerate() {
        println!(
            "  targets[{i}]: name={} region={} endpoint_url={} role_arn={} log_group_prefixes={:?} log_groups={:?} poll_interval={} initial_lookback={} late_arrival_window={}",
            t.name,
            t.region,
            t.endpoint_url.as_deref().unwrap_or("-"),
            t.role_arn.as_deref().unwrap_or("-"),
            t.group_prefixes,
            t.groups,
            humantime::format_duration(t.poll_interval),
            humantime::format_duration(t.initial_lookback),
            humantime::format_duration(t.late_arrival_window),
        );
    }
    println!(
        "  limits: max_users_per_server={} max_ids={}",
        cfg.limits.max_users_per_server, cfg.limits.max_ids
    );
    let inv = &cfg.inventory;
    println!(
        "  inventory: enabled={} interval={} users={} add_log_groups={} skip_legacy_duplicates={}",
        inv.enabled,
        humantime::format_duration(inv.interval),
        inv.users.as_str(),
        inv.add_log_groups,
        inv.skip_legacy_duplicates,
    );
    let probe = &cfg.probe;
    println!(
        "  probe: enabled={} interval={} connect_timeout={} banner_timeout={} public_hostnames={} targets={}",
        probe.enabled,
        humantime::format_duration(probe.interval),
        humantime::format_duration(probe.connect_timeout),
        humantime::format_duration(probe.banner_timeout),
        probe
            .public_hostnames
            .map_or("auto (only without an endpoint URL)".to_owned(), |b| b.to_string()),
        probe.targets.len(),
    );
}

/// Dependencies that log at info about routine work (credential loading,
/// connection reuse) are kept at warn unless the user gives a full filter
/// directive (`--log.level 'info,aws_config=debug'`).
const QUIET_DEPENDENCIES: &str = "aws_config=warn,aws_smithy_runtime=warn,aws_smithy_runtime_api=warn,hyper=warn,hyper_util=warn";

fn init_tracing(cfg: &Config) -> anyhow::Result<()> {
    let directive = if cfg.log_level.contains([',', '=']) {
        cfg.log_level.clone()
    } else {
        format!("{},{QUIET_DEPENDENCIES}", cfg.log_level)
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directive)
        .with_context(|| format!("invalid log level {directive:?}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match cfg.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Logfmt => builder.event_format(logfmt::Logfmt).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

/// What the HTTP server sees of the daemon. The sources arrive after the
/// server has started; until then the daemon is alive but not ready.
struct DaemonView {
    sources: OnceLock<Arc<Sources>>,
    pipeline: Arc<Mutex<Pipeline>>,
}

impl View for DaemonView {
    fn is_ready(&self) -> bool {
        self.sources.get().is_some_and(|s| s.is_ready())
    }

    fn groups(&self) -> Vec<GroupRow> {
        let Some(sources) = self.sources.get() else {
            return Vec::new();
        };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        sources
            .status()
            .into_iter()
            .map(|g| GroupRow {
                target: g.target,
                log_group: g.log_group,
                last_poll_unix: g.last_success_unix,
                lag_seconds: g
                    .newest_event_ms
                    .map(|ms| (now - ms as f64 / 1000.0).max(0.0)),
                last_error: g.last_error,
            })
            .collect()
    }

    fn recent_failures(&self) -> Vec<FailureRow> {
        let outcomes = {
            let p = self.pipeline.lock().unwrap_or_else(|e| e.into_inner());
            p.recent_failures()
        };
        outcomes
            .into_iter()
            .map(|o| FailureRow {
                timestamp_ms: o.timestamp_ms,
                log_group: o.log_group.into_owned(),
                server_id: o.server_id.unwrap_or_default().into_owned(),
                user: o.user.unwrap_or_default().into_owned(),
                category: o.category.unwrap_or_default().to_owned(),
                cause: o.cause.unwrap_or_default().to_owned(),
                advice: o.advice.unwrap_or_default().to_owned(),
                message: o.message.unwrap_or_default().into_owned(),
            })
            .collect()
    }
}

async fn serve(cfg: Config) -> anyhow::Result<ExitCode> {
    let registry = Registry::new();
    let metrics = Arc::new(Metrics::new(&registry, cfg.limits));
    let pipeline = Arc::new(Mutex::new(Pipeline::new(
        metrics.clone(),
        cfg.pipeline.clone(),
    )));
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    shutdown::install(cancel.clone());

    // The web config is read before binding, so a bad one fails startup
    // with every problem named and nothing listening.
    let edge = Arc::new(web::Edge::from_file(cfg.web_config_file.as_deref())?);
    let mut listeners = Vec::with_capacity(cfg.listen_addresses.len());
    for addr in &cfg.listen_addresses {
        let l = web::Listener::bind(*addr, edge.clone())
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {addr} (web.listen_address); pick a free address with --web.listen-address"
                )
            })?;
        let bound = l.local_addr().context("cannot read the bound address")?;
        listeners.push((l, bound));
    }
    let view = Arc::new(DaemonView {
        sources: OnceLock::new(),
        pipeline: pipeline.clone(),
    });
    let state = Arc::new(AppState {
        registry: registry.clone(),
        telemetry_path: cfg.telemetry_path.clone(),
        targets: cfg
            .targets
            .iter()
            .map(|t| TargetRow {
                name: t.name.clone(),
                region: t.region.clone(),
                endpoint_url: t.endpoint_url.clone(),
                role_arn: t.role_arn.clone(),
            })
            .collect(),
        view: view.clone(),
        web: edge.clone(),
    });
    // The HTTP server gets its own token, cancelled only after the pollers
    // have stopped, so a scrape during shutdown still sees the final counts.
    let http_cancel = CancellationToken::new();
    let http_tracker = TaskTracker::new();
    for (listener, address) in listeners {
        http_tracker.spawn(http::serve(
            listener,
            state.clone(),
            http_tracker.clone(),
            http_cancel.clone(),
        ));
        tracing::info!(
            address = %address,
            tls = edge.tls_enabled(),
            telemetry_path = %cfg.telemetry_path,
            version = env!("CARGO_PKG_VERSION"),
            "listening"
        );
    }

    // The inventory's first view comes before the first poll, so that the
    // legacy copies of dual-logging servers are skipped from the start.
    let inventories = first_inventories(&cfg, &metrics, &pipeline, &cancel).await;
    let started = tokio::select! {
        _ = cancel.cancelled() => None,
        s = Sources::start(
            cfg.targets.clone(),
            cfg.state_path.clone(),
            cfg.state_flush_interval,
            pipeline.clone(),
            metrics.clone(),
            &tracker,
            cancel.child_token(),
        ) => Some(s),
    };
    let sources = match started {
        Some(Ok(s)) => Some(Arc::new(s)),
        Some(Err(err)) => {
            cancel.cancel();
            http_cancel.cancel();
            return Err(err.context("cannot start polling CloudWatch Logs"));
        }
        None => None,
    };
    if let Some(sources) = &sources {
        let _ = view.sources.set(sources.clone());
        start_inventory_and_probe(
            &cfg,
            sources,
            inventories,
            &metrics,
            &pipeline,
            &tracker,
            &cancel,
        );
        tracing::info!(targets = cfg.targets.len(), "polling started");
    }

    cancel.cancelled().await;
    let deadline = tokio::time::Instant::now() + shutdown::DRAIN_DEADLINE;
    tracker.close();
    if tokio::time::timeout_at(deadline, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            deadline = ?shutdown::DRAIN_DEADLINE,
            "background tasks did not stop before the drain deadline"
        );
    }
    let mut code = ExitCode::SUCCESS;
    if let Some(sources) = &sources {
        match tokio::time::timeout_at(deadline, sources.flush_state()).await {
            Ok(Ok(())) => tracing::info!(path = %cfg.state_path.display(), "state saved"),
            Ok(Err(err)) => {
                tracing::error!(error = %format!("{err:#}"), path = %cfg.state_path.display(), "cannot save state");
                code = ExitCode::FAILURE;
            }
            Err(_) => {
                tracing::error!(path = %cfg.state_path.display(), "saving state did not finish before the drain deadline");
                code = ExitCode::FAILURE;
            }
        }
    }
    http_cancel.cancel();
    http_tracker.close();
    if tokio::time::timeout_at(deadline, http_tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("open HTTP connections did not finish before the drain deadline");
    }
    tracing::info!("stopped");
    Ok(code)
}

/// How long the start waits for a target's first inventory view before it
/// polls without one. The Transfer API answers in well under a second; an
/// unreachable one (no route, no VPC endpoint) must not hold polling up.
const FIRST_INVENTORY_TIMEOUT: Duration = Duration::from_secs(10);

/// One inventory per target (when enabled) and its first view, taken
/// before polling starts, for all targets at once (so several unreachable
/// ones cost one timeout, not one each). The view's dual-logging servers go
/// to the pipeline at once; a failed or slow first refresh is logged and the
/// refresh loop retries on its interval. Same order as `cfg.targets`.
async fn first_inventories(
    cfg: &Config,
    metrics: &Arc<Metrics>,
    pipeline: &Arc<Mutex<Pipeline>>,
    cancel: &CancellationToken,
) -> Vec<(Inventory, Option<Vec<ServerSummary>>)> {
    if !cfg.inventory.enabled {
        return Vec::new();
    }
    let mut set = tokio::task::JoinSet::new();
    for (i, t) in cfg.targets.iter().enumerate() {
        let (t, metrics, inv_cfg, cancel) = (
            t.clone(),
            metrics.clone(),
            cfg.inventory.clone(),
            cancel.clone(),
        );
        set.spawn(async move {
            let sdk = sdk_config(&t).await;
            let mut inv = Inventory::new(&sdk, metrics, inv_cfg);
            let first = tokio::select! {
                _ = cancel.cancelled() => None,
                r = tokio::time::timeout(FIRST_INVENTORY_TIMEOUT, inv.refresh()) => match r {
                    Ok(Ok(servers)) => Some(servers),
                    Ok(Err(err)) => {
                        tracing::warn!(target_name = %t.name, error = %err,
                            "first inventory refresh failed; polling starts without it");
                        None
                    }
                    Err(_) => {
                        tracing::warn!(target_name = %t.name, timeout = ?FIRST_INVENTORY_TIMEOUT,
                            "first inventory refresh timed out; polling starts without it");
                        None
                    }
                },
            };
            (i, inv, first)
        });
    }
    let mut out: Vec<Option<(Inventory, Option<Vec<ServerSummary>>)>> =
        (0..cfg.targets.len()).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (i, inv, first) = match joined {
            Ok(v) => v,
            Err(err) => {
                // A bug, not bad input: that target gets a fresh inventory
                // without a first view below.
                tracing::error!(error = %err, "first inventory task failed");
                continue;
            }
        };
        if let Some(servers) = &first {
            let dual = inventory::legacy_duplicate_servers(servers, &cfg.inventory);
            pipeline
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .set_legacy_duplicates(&cfg.targets[i].name, dual);
        }
        out[i] = Some((inv, first));
    }
    let mut all = Vec::with_capacity(out.len());
    for (slot, t) in out.into_iter().zip(&cfg.targets) {
        all.push(match slot {
            Some(v) => v,
            None => {
                let sdk = sdk_config(t).await;
                (
                    Inventory::new(&sdk, metrics.clone(), cfg.inventory.clone()),
                    None,
                )
            }
        });
    }
    all
}

/// Starts the Transfer API inventory of every target (it hands structured
/// log destinations to the sources) and the endpoint prober.
fn start_inventory_and_probe(
    cfg: &Config,
    sources: &Arc<Sources>,
    inventories: Vec<(Inventory, Option<Vec<ServerSummary>>)>,
    metrics: &Arc<Metrics>,
    pipeline: &Arc<Mutex<Pipeline>>,
    tracker: &TaskTracker,
    cancel: &CancellationToken,
) {
    let mut feeds = Vec::new();
    for (t, (inv, first)) in cfg.targets.iter().zip(inventories) {
        let (sources, target) = (sources.clone(), t.name.clone());
        let sink: inventory::GroupSink =
            Arc::new(move |groups| sources.add_groups(&target, groups));
        let rx = inventory::spawn(tracker, cancel.child_token(), inv, Some(sink), first);
        tracker.spawn(follow_legacy_duplicates(
            rx.clone(),
            t.name.clone(),
            cfg.inventory.clone(),
            pipeline.clone(),
            cancel.child_token(),
        ));
        feeds.push(crate::probe::InventoryFeed {
            servers: rx,
            derive_public_hostnames: cfg.probe.derive_public_hostnames(t.endpoint_url.as_deref()),
        });
    }
    crate::probe::spawn(
        tracker,
        cancel.child_token(),
        metrics.clone(),
        cfg.probe.clone(),
        feeds,
    );
}

/// Keeps the pipeline's set of dual-logging servers (whose legacy lines it
/// skips) in step with every inventory refresh of one target.
async fn follow_legacy_duplicates(
    mut servers: tokio::sync::watch::Receiver<Arc<Vec<ServerSummary>>>,
    target: String,
    cfg: InventoryConfig,
    pipeline: Arc<Mutex<Pipeline>>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = servers.changed() => if changed.is_err() { return },
        }
        let view = servers.borrow_and_update().clone();
        let dual = inventory::legacy_duplicate_servers(&view, &cfg);
        if !dual.is_empty() {
            tracing::debug!(target_name = %target, servers = ?dual,
                "both logging mechanisms on: legacy lines of these servers are skipped");
        }
        pipeline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_legacy_duplicates(&target, dual);
    }
}

/// The SDK configuration of a target: the default credential chain, the
/// target's Region and endpoint, and its role when one is set.
async fn sdk_config(t: &config::Target) -> aws_config::SdkConfig {
    let loader = || {
        let mut l = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(t.region.clone()));
        if let Some(url) = &t.endpoint_url {
            l = l.endpoint_url(url);
        }
        l
    };
    let base = loader().load().await;
    match &t.role_arn {
        None => base,
        Some(role) => {
            let provider = aws_config::sts::AssumeRoleProvider::builder(role)
                .session_name("aws-transfer-exporter")
                .configure(&base)
                .build()
                .await;
            loader().credentials_provider(provider).load().await
        }
    }
}

/// A logfmt event formatter: `ts=… level=info target=… msg="…" key=value`,
/// the format Prometheus' own components print.
mod logfmt {
    use std::fmt;

    use tracing::field::{Field, Visit};
    use tracing::{Event, Subscriber};
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
    use tracing_subscriber::registry::LookupSpan;

    pub struct Logfmt;

    fn needs_quotes(v: &str) -> bool {
        v.is_empty()
            || v.chars()
                .any(|c| c == ' ' || c == '=' || c == '"' || c.is_control())
    }

    fn write_value(w: &mut Writer<'_>, v: &str) -> fmt::Result {
        if needs_quotes(v) {
            w.write_char('"')?;
            for c in v.chars() {
                match c {
                    '"' => w.write_str("\\\"")?,
                    '\\' => w.write_str("\\\\")?,
                    '\n' => w.write_str("\\n")?,
                    c if c.is_control() => write!(w, "\\u{{{:x}}}", c as u32)?,
                    c => w.write_char(c)?,
                }
            }
            w.write_char('"')
        } else {
            w.write_str(v)
        }
    }

    struct Visitor<'a, 'w> {
        w: &'a mut Writer<'w>,
        result: fmt::Result,
    }

    impl Visitor<'_, '_> {
        fn pair(&mut self, field: &Field, value: &str) {
            if self.result.is_err() {
                return;
            }
            let key = match field.name() {
                "message" => "msg",
                k => k,
            };
            self.result = write!(self.w, " {key}=").and_then(|_| write_value(self.w, value));
        }
    }

    impl Visit for Visitor<'_, '_> {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.pair(field, value);
        }
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.pair(field, &format!("{value:?}"));
        }
    }

    impl<S, N> FormatEvent<S, N> for Logfmt
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        fn format_event(
            &self,
            _ctx: &FmtContext<'_, S, N>,
            mut writer: Writer<'_>,
            event: &Event<'_>,
        ) -> fmt::Result {
            let meta = event.metadata();
            let ts = humantime::format_rfc3339_millis(std::time::SystemTime::now());
            write!(
                writer,
                "ts={ts} level={} target={}",
                meta.level().as_str().to_ascii_lowercase(),
                meta.target()
            )?;
            let mut v = Visitor {
                w: &mut writer,
                result: Ok(()),
            };
            event.record(&mut v);
            v.result?;
            writeln!(writer)
        }
    }
}
