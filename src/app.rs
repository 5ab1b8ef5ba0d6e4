//! The app builder: checked config → registry, metrics, ingest → HTTP
//! server → sources (+ inventory and probe), with owned, cancellable tasks.
//! Assembled here once, and used by `main`, the integration tests and the
//! benches: [`App::start`] returns a [`Running`] app, [`App::run`] runs it
//! until a shutdown future completes, so a test runs the daemon in-process.
//!
//! Startup order: load and validate the config (exit non-zero naming every
//! bad key), set up logging, bind the listen address (exit non-zero if it is
//! taken), serve HTTP at once (`/-/healthy` answers while the sources start;
//! `/-/ready` says 503 until the first round), log exactly one `listening`
//! line with the bound `address` (tests start on port 0 and read it), then
//! start the sources.
//!
//! Shutdown (the future given to [`App::run`]; SIGTERM/SIGINT in `main`, see
//! [`crate::shutdown`]): cancel every task, wait for pollers and in-flight
//! scrapes under [`shutdown::DRAIN_DEADLINE`], write the state, exit 0.
//!
//! Exit codes ([`exit`]): 0 after a clean shutdown, 1 for a runtime failure
//! (cannot listen, cannot save state), 2 for a usage or configuration error.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use prometheus::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::aws::Health;
use crate::cli::ServeArgs;
use crate::config::{self, Config, LogFormat};
use crate::http::{
    self, ApiFailureRow, ApiRow, AppState, CauseRow, CauseServerRow, FailureRow, GroupRow, PushRow,
    TargetRow, View,
};
use crate::ingest::Ingest;
use crate::inventory::{self, Inventory, InventoryConfig, ServerSummary};
use crate::metrics::Metrics;
use crate::persist::Persister;
use crate::reload::{self, ReloadMetrics};
use crate::shutdown;
use crate::source::cloudwatch::LogsApi;
use crate::source::firehose;
use crate::source::Sources;
use crate::state::{FileStore, StateStore};
use crate::web;

/// Exit codes: a convention shared with most command-line tools (and clap,
/// which exits 2 on a usage error before we run).
pub mod exit {
    /// Ran and stopped cleanly.
    pub const OK: u8 = 0;
    /// Failed while running: cannot listen, cannot save state, …
    pub const RUNTIME: u8 = 1;
    /// Usage or configuration error: nothing was started.
    pub const CONFIG: u8 = 2;
}

/// `main`'s daemon: checks the config (exit 2 naming every problem), sets
/// up logging, runs the app until SIGINT/SIGTERM (a second signal while
/// draining exits at once with 130).
pub fn main(args: ServeArgs) -> ExitCode {
    let cfg = match config::load(&args) {
        Ok(cfg) => cfg,
        Err(err) => {
            eprintln!("aws-transfer-exporter: error: {err}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    // The web config (and the certificates and keys it names) is read
    // before anything starts: a bad one is a configuration error.
    let web_summary = match &cfg.web_config_file {
        Some(path) => match web::Edge::check(path) {
            Ok(s) => Some(s),
            Err(err) => {
                eprintln!("aws-transfer-exporter: error: {err}");
                return ExitCode::from(exit::CONFIG);
            }
        },
        None => None,
    };
    if args.config_check {
        print!("{}", cfg.summary());
        if let Some(s) = web_summary {
            println!("  web: {s}");
        }
        return ExitCode::from(exit::OK);
    }
    let result = init_tracing(&cfg).and_then(|()| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("exporter")
            .build()
            .context("cannot start the async runtime")?;
        let app = App::new(cfg).reload_from(args).reload_on_sighup();
        let code = runtime.block_on(app.run(shutdown::signals()));
        // Connections stuck past the drain deadline must not hold the exit.
        runtime.shutdown_timeout(Duration::from_millis(100));
        code
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("aws-transfer-exporter: error: {err:#}");
            ExitCode::from(exit::RUNTIME)
        }
    }
}

/// Dependencies that log at info about routine work (credential loading,
/// connection reuse) are kept at warn unless the user gives a full filter
/// directive (`--log.level 'info,aws_config=debug'`).
const QUIET_DEPENDENCIES: &str = "aws_config=warn,aws_smithy_runtime=warn,aws_smithy_runtime_api=warn,hyper=warn,hyper_util=warn";

/// Dependencies whose debug/trace output can carry secrets (see
/// `init_tracing`).
const SECRET_BEARING_TARGETS: &[&str] = &[
    "aws_sigv4",
    "aws_runtime",
    "aws_config",
    "aws_credential_types",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_smithy_http",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tokio_rustls",
];

fn init_tracing(cfg: &Config) -> anyhow::Result<()> {
    let directive = if cfg.log_level.contains([',', '=']) {
        cfg.log_level.clone()
    } else {
        format!("{},{QUIET_DEPENDENCIES}", cfg.log_level)
    };
    let mut filter = tracing_subscriber::EnvFilter::try_new(&directive)
        .with_context(|| format!("invalid log level {directive:?}"))?;
    // Secrets never reach a log line, at any level: the SDK's signing and
    // HTTP layers trace canonical requests and headers (the access key id,
    // session tokens) and hyper/rustls trace raw bytes (basic-auth headers,
    // Firehose access keys). Their debug and trace output is capped here,
    // whatever the user asked for (a directive for the same target is
    // replaced).
    for capped in SECRET_BEARING_TARGETS {
        filter = filter.add_directive(
            format!("{capped}=info")
                .parse()
                .expect("static directive parses"),
        );
    }
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
/// server has started; until then the daemon is alive but not ready. A
/// reload replaces them.
struct DaemonView {
    sources: RwLock<Option<Arc<Sources>>>,
    /// Set when polling is off and the start is complete.
    push_ready: std::sync::atomic::AtomicBool,
    ingest: Arc<Ingest>,
    persist: Arc<Persister>,
    /// Every target's AWS API health entries (CloudWatch Logs from the
    /// sources, Transfer from the inventories), registered as they start.
    health: Arc<Health>,
    /// The push receiver, when on.
    firehose: Option<firehose::Receiver>,
    started: SystemTime,
    /// The running configuration's targets, for the landing page.
    targets: RwLock<Vec<TargetRow>>,
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl DaemonView {
    fn sources(&self) -> Option<Arc<Sources>> {
        self.sources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_targets(&self, targets: &[config::Target]) {
        let rows = targets
            .iter()
            .map(|t| TargetRow {
                name: t.name.clone(),
                region: t.region.clone(),
                endpoint_url: t.endpoint_url.clone(),
                role_arn: t.role_arn.clone(),
            })
            .collect();
        *self.targets.write().unwrap_or_else(|e| e.into_inner()) = rows;
    }

    fn set_sources(&self, sources: Option<Arc<Sources>>) {
        if let Some(s) = &sources {
            for h in s.api_health() {
                self.health.register(h);
            }
        }
        *self.sources.write().unwrap_or_else(|e| e.into_inner()) = sources;
    }
}

impl View for DaemonView {
    fn is_ready(&self) -> bool {
        match self.sources() {
            Some(s) => s.is_ready(),
            // Push only: listeners up and the inventory's first views taken
            // (or timed out).
            None => self.push_ready.load(std::sync::atomic::Ordering::Acquire),
        }
    }

    fn groups(&self) -> Vec<GroupRow> {
        let Some(sources) = self.sources() else {
            return Vec::new();
        };
        sources
            .status()
            .into_iter()
            .map(|g| GroupRow {
                target: g.target,
                log_group: g.log_group,
                last_poll_unix: g.last_success_unix,
                newest_event_ms: g.newest_event_ms,
                last_error: g.last_error,
            })
            .collect()
    }

    fn cause_summary(&self) -> Vec<CauseRow> {
        self.ingest
            .cause_summary()
            .into_iter()
            .map(|c| CauseRow {
                category: c.category.to_owned(),
                cause: c.cause.to_owned(),
                advice: c.advice.to_owned(),
                total: c.total,
                servers: c
                    .servers
                    .into_iter()
                    .map(|s| CauseServerRow {
                        server_id: s.server_id,
                        count: s.count,
                        last_ms: s.last_ms,
                    })
                    .collect(),
            })
            .collect()
    }

    fn api_status(&self) -> Vec<ApiRow> {
        self.health
            .status()
            .into_iter()
            .map(|s| ApiRow {
                target: s.target,
                api: s.api.as_str().to_owned(),
                up: s.up,
                last_error: s.last_error.map(|f| ApiFailureRow {
                    operation: f.operation.to_owned(),
                    outcome: f.kind.as_str().to_owned(),
                    message: f.message,
                    fix: f.fix.to_owned(),
                    since_unix: unix(f.since),
                    count: f.count,
                    recovered_unix: f.recovered_at.map(unix),
                }),
            })
            .collect()
    }

    fn push_status(&self) -> Option<PushRow> {
        let st = self.firehose.as_ref()?.status();
        Some(PushRow {
            listen_address: st.listen_address.to_string(),
            path: firehose::PUSH_PATH.to_owned(),
            last_request_unix: st.last_request_ms.map(|ms| ms as f64 / 1000.0),
            last_outcome: st.last_outcome.map(str::to_owned),
            last_error: st.last_error.map(|(ms, msg)| (ms as f64 / 1000.0, msg)),
            requests: st
                .requests
                .into_iter()
                .map(|(o, n)| (o.to_owned(), n))
                .collect(),
            unauthenticated_warning: st.warning.map(str::to_owned),
        })
    }

    fn started_unix(&self) -> Option<f64> {
        Some(unix(self.started))
    }

    fn targets(&self) -> Vec<TargetRow> {
        self.targets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn scrape(&self) -> http::BoxFuture<'_, Option<crate::metrics::Snapshot>> {
        Box::pin(async { Some(self.persist.scrape().await) })
    }

    fn recent_failures(&self) -> Vec<FailureRow> {
        let outcomes = self.ingest.recent_failures();
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

    fn before_scrape(&self) {
        if let Some(sources) = self.sources() {
            sources.refresh_scrape_time_gauges(crate::source::poller::now_ms());
        }
    }
}

/// The daemon, assembled once from a checked config.
pub struct App {
    cfg: Config,
    logs_apis: Option<Vec<Arc<dyn LogsApi>>>,
    store: Option<Arc<dyn StateStore>>,
    /// The command line the config was loaded from: a reload reads the same
    /// file and lays the same flags over it.
    reload_args: Option<ServeArgs>,
    sighup: bool,
}

/// A started app: listening, with its sources starting or running.
pub struct Running {
    addresses: Vec<SocketAddr>,
    firehose_address: Option<SocketAddr>,
    registry: prometheus::Registry,
    metrics: Arc<Metrics>,
    ingest: Arc<Ingest>,
    view: Arc<DaemonView>,
    reload: reload::Handle,
    cancel: CancellationToken,
    done: tokio::task::JoinHandle<anyhow::Result<ExitCode>>,
}

impl App {
    pub fn new(cfg: Config) -> App {
        App {
            cfg,
            logs_apis: None,
            store: None,
            reload_args: None,
            sighup: false,
        }
    }

    /// Makes the app reloadable (SIGHUP, `POST /-/reload`): `args` is the
    /// command line the config was loaded from; a reload reads its config
    /// file again and lays the same flags over it. Without it a reload
    /// fails, naming the reason.
    pub fn reload_from(mut self, args: ServeArgs) -> App {
        self.reload_args = Some(args);
        self
    }

    /// Reloads on SIGHUP (the binary; an in-process test would take its
    /// runner's signals).
    pub fn reload_on_sighup(mut self) -> App {
        self.sighup = true;
        self
    }

    /// CloudWatch Logs implementations per target (same order as the
    /// config's targets) instead of the SDK: for benches with an in-process
    /// page source.
    pub fn with_logs_apis(mut self, apis: Vec<Arc<dyn LogsApi>>) -> App {
        self.logs_apis = Some(apis);
        self
    }

    /// A state store instead of the file at `state.path`.
    pub fn with_state_store(mut self, store: Arc<dyn StateStore>) -> App {
        self.store = Some(store);
        self
    }

    /// Binds the listener (an error if the address is taken), serves HTTP at
    /// once, logs `listening`, and starts the sources in the background.
    pub async fn start(self) -> anyhow::Result<Running> {
        let App {
            cfg,
            logs_apis,
            store,
            reload_args,
            sighup,
        } = self;
        let registry = Registry::new();
        let metrics = Arc::new(Metrics::new(&registry, cfg.limits));
        let reload_metrics = ReloadMetrics::new(&registry);
        let ingest = Arc::new(Ingest::new(metrics.clone(), cfg.pipeline.clone()));
        // The saved state first: counters resume before anything listens, so
        // the first scrape of this life continues the last one.
        let store: Arc<dyn StateStore> = match store {
            Some(s) => s,
            None => Arc::new(FileStore::exclusive(cfg.state_path.clone())?),
        };
        let persist = Persister::load(store, ingest.clone(), metrics.clone());
        // The web config is read before binding, so a bad one fails startup
        // with every problem named and nothing listening.
        let edge = Arc::new(web::Edge::from_file(cfg.web_config_file.as_deref())?);
        let mut listeners = Vec::with_capacity(cfg.listen_addresses.len());
        let mut addresses = Vec::with_capacity(cfg.listen_addresses.len());
        for addr in &cfg.listen_addresses {
            let l = web::Listener::bind(*addr, edge.clone())
                .await
                .with_context(|| {
                    format!(
                        "cannot listen on {addr} (web.listen_address); pick a free address with --web.listen-address"
                    )
                })?;
            addresses.push(l.local_addr().context("cannot read the bound address")?);
            listeners.push(l);
        }
        // The push receiver: its own listener, TLS from the same web edge.
        let mut firehose = None;
        let mut firehose_address = None;
        if let Some(fcfg) = &cfg.firehose {
            let l = web::Listener::bind(fcfg.listen_address, edge.clone())
                .await
                .with_context(|| {
                    format!(
                        "cannot listen on {} (firehose.listen_address); pick a free address with --firehose.listen-address",
                        fcfg.listen_address
                    )
                })?;
            firehose_address = Some(l.local_addr().context("cannot read the bound address")?);
            let sink: Arc<dyn crate::ingest::EventSink> = ingest.clone();
            let receiver = firehose::Receiver::new(
                fcfg.clone(),
                sink,
                firehose::FirehoseMetrics::new(&registry),
            )
            .context("cannot start the Firehose receiver")?;
            receiver.persist_with(&persist);
            firehose = Some((l, receiver));
        }
        let cancel = CancellationToken::new();
        let view = Arc::new(DaemonView {
            sources: RwLock::new(None),
            push_ready: std::sync::atomic::AtomicBool::new(false),
            ingest: ingest.clone(),
            persist: persist.clone(),
            health: Arc::new(Health::new()),
            firehose: firehose.as_ref().map(|(_, r)| r.clone()),
            started: SystemTime::now(),
            targets: RwLock::new(Vec::new()),
        });
        view.set_targets(&cfg.targets);
        let (reload_handle, reload_requests) = reload::Handle::new(cfg.web_enable_lifecycle);
        if sighup {
            tokio::spawn(reload::on_sighup(reload_handle.clone(), cancel.clone()));
        }
        let done = tokio::spawn(serve(
            cfg,
            listeners,
            firehose,
            Deps {
                edge,
                registry: registry.clone(),
                metrics: metrics.clone(),
                ingest: ingest.clone(),
                view: view.clone(),
                persist,
                logs_apis,
                reload: Reloads {
                    args: reload_args,
                    handle: reload_handle.clone(),
                    requests: reload_requests,
                    metrics: reload_metrics,
                },
            },
            cancel.clone(),
        ));
        Ok(Running {
            addresses,
            firehose_address,
            registry,
            metrics,
            ingest,
            view,
            reload: reload_handle,
            cancel,
            done,
        })
    }

    /// Starts, runs until `shutdown` completes (or the app fails), then
    /// drains and saves state.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<ExitCode> {
        let running = self.start().await?;
        running.run_until(shutdown).await
    }
}

impl Running {
    /// The bound address of the first listener (port 0 resolved).
    pub fn address(&self) -> SocketAddr {
        self.addresses[0]
    }

    /// The bound address of the Firehose push listener, when on.
    pub fn firehose_address(&self) -> Option<SocketAddr> {
        self.firehose_address
    }

    /// Every bound address, in the order configured.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// The registry behind `/metrics`.
    pub fn registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    /// The ingest boundary the sources feed.
    pub fn ingest(&self) -> &Arc<Ingest> {
        &self.ingest
    }

    /// Every metric family (for tests and benches that read counters).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The CloudWatch sources, once started (after the first inventory
    /// views, at most [`config::FIRST_INVENTORY_TIMEOUT`]).
    pub fn sources(&self) -> Option<Arc<Sources>> {
        self.view.sources()
    }

    /// Reloads the configuration as SIGHUP does, and waits for the outcome
    /// (`Err`: the app is stopping or too many reloads wait).
    pub async fn reload(&self) -> Result<reload::Outcome, &'static str> {
        self.reload.reload("Running::reload").await
    }

    /// What `/-/ready` says.
    pub fn is_ready(&self) -> bool {
        self.view.is_ready()
    }

    /// Runs until `shutdown` completes, then shuts down.
    pub async fn run_until(
        mut self,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<ExitCode> {
        tokio::select! {
            _ = shutdown => self.shutdown().await,
            r = &mut self.done => r.context("the app task failed")?,
        }
    }

    /// Stops every task, drains, saves state.
    pub async fn shutdown(self) -> anyhow::Result<ExitCode> {
        self.cancel.cancel();
        self.done.await.context("the app task failed")?
    }
}

/// What the serving task and every generation of sources are built with.
struct Deps {
    edge: Arc<web::Edge>,
    registry: Registry,
    metrics: Arc<Metrics>,
    ingest: Arc<Ingest>,
    view: Arc<DaemonView>,
    persist: Arc<Persister>,
    logs_apis: Option<Vec<Arc<dyn LogsApi>>>,
    reload: Reloads,
}

/// The reload side of the serving task.
struct Reloads {
    args: Option<ServeArgs>,
    handle: reload::Handle,
    requests: tokio::sync::mpsc::Receiver<reload::Request>,
    metrics: ReloadMetrics,
}

/// The tasks a configuration drives (sources, inventory, prober): one
/// generation per loaded configuration. A reload starts the next one and
/// stops this one; the sources continue from where this one stopped.
struct Generation {
    sources: Option<Arc<Sources>>,
    /// Each target's inventory view (the last one stays readable after the
    /// generation stopped): the next generation's inventories continue
    /// from it.
    views: Views,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

/// The latest inventory view of each target, by target name.
type Views = Vec<(String, ServerView)>;
type ServerView = tokio::sync::watch::Receiver<Arc<Vec<ServerSummary>>>;

impl Generation {
    /// Cancels the generation's tasks and waits for them until `deadline`.
    async fn stop(&self, deadline: tokio::time::Instant) -> bool {
        self.cancel.cancel();
        self.tracker.close();
        tokio::time::timeout_at(deadline, self.tracker.wait())
            .await
            .is_ok()
    }
}

async fn serve(
    cfg: Config,
    listeners: Vec<web::Listener>,
    firehose: Option<(web::Listener, firehose::Receiver)>,
    mut deps: Deps,
    cancel: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let tracker = TaskTracker::new();
    let edge = deps.edge.clone();

    let state = Arc::new(AppState {
        registry: deps.registry.clone(),
        telemetry_path: cfg.telemetry_path.clone(),
        view: deps.view.clone(),
        web: edge.clone(),
        reload: Some(deps.reload.handle.clone()),
    });
    // The HTTP server gets its own token, cancelled only after the pollers
    // have stopped, so a scrape during shutdown still sees the final counts.
    let http_cancel = CancellationToken::new();
    let http_tracker = TaskTracker::new();
    for listener in listeners {
        let address = listener
            .local_addr()
            .context("cannot read the bound address")?;
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

    if let Some((listener, receiver)) = firehose {
        // Stops with the sources: new requests get 503 (Firehose retries),
        // requests in flight finish and are counted before the state is
        // saved. Not part of a generation: a reload does not touch it.
        tracker.spawn(firehose::serve_on(listener, receiver, cancel.child_token()));
    }
    {
        let every = if cfg.state_flush_interval.is_zero() {
            crate::config::defaults::DEFAULT_STATE_FLUSH_INTERVAL
        } else {
            cfg.state_flush_interval
        };
        tracker.spawn(
            deps.persist
                .clone()
                .run_flusher(every, cancel.child_token()),
        );
    }

    let mut running_cfg = cfg;
    let mut generation = match start_first_generation(&running_cfg, &deps, &cancel).await {
        Ok(g) => g,
        Err(err) => {
            cancel.cancel();
            http_cancel.cancel();
            return Err(err);
        }
    };

    // Reloads, one at a time, until shutdown.
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            req = deps.reload.requests.recv() => {
                let Some(req) = req else {
                    cancel.cancelled().await;
                    break;
                };
                let outcome = reload_once(&mut running_cfg, &mut generation, &deps, req.origin, &cancel).await;
                if let Some(reply) = req.reply {
                    let _ = reply.send(outcome);
                }
            }
        }
    }
    // Requests that arrive from now on get "shutting down".
    deps.reload.requests.close();

    let deadline = tokio::time::Instant::now() + shutdown::DRAIN_DEADLINE;
    tracker.close();
    let stopped = generation.stop(deadline).await;
    if !stopped
        || tokio::time::timeout_at(deadline, tracker.wait())
            .await
            .is_err()
    {
        tracing::warn!(
            deadline = ?shutdown::DRAIN_DEADLINE,
            "background tasks did not stop before the drain deadline"
        );
    }
    let persist = &deps.persist;
    let mut code = ExitCode::SUCCESS;
    // Every source has stopped: this snapshot records all they counted.
    match tokio::time::timeout_at(deadline, persist.flush()).await {
        Ok(Ok(())) => tracing::info!(path = %persist.describe(), "state saved"),
        Ok(Err(err)) => {
            tracing::error!(error = %format!("{err:#}"), path = %persist.describe(), "cannot save state");
            code = ExitCode::from(exit::RUNTIME);
        }
        Err(_) => {
            tracing::error!(path = %persist.describe(), "saving state did not finish before the drain deadline");
            code = ExitCode::from(exit::RUNTIME);
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

/// The first generation: the inventory's first views, then the sources from
/// the state store, then the inventory loops and the prober.
async fn start_first_generation(
    cfg: &Config,
    deps: &Deps,
    root: &CancellationToken,
) -> anyhow::Result<Generation> {
    let (metrics, ingest, persist) = (&deps.metrics, &deps.ingest, &deps.persist);
    let cancel = root.child_token();
    let tracker = TaskTracker::new();
    // The inventory's first view comes before the first poll, so that the
    // legacy copies of dual-logging servers are skipped from the start.
    let inventories =
        first_inventories(cfg, metrics, ingest, &[], &deps.view.health, &cancel).await;
    let start_sources = async {
        match deps.logs_apis.clone() {
            Some(apis) => Sources::start_with_apis(
                cfg.targets.clone(),
                apis,
                persist.clone(),
                ingest.clone(),
                metrics.clone(),
                &tracker,
                cancel.child_token(),
            ),
            None => {
                Sources::start(
                    cfg.targets.clone(),
                    persist.clone(),
                    ingest.clone(),
                    metrics.clone(),
                    &tracker,
                    cancel.child_token(),
                )
                .await
            }
        }
    };
    let started = if cfg.poll_enabled {
        tokio::select! {
            _ = cancel.cancelled() => None,
            s = start_sources => Some(s),
        }
    } else {
        drop(start_sources);
        tracing::info!("polling is off (poll.enabled=false): push only");
        None
    };
    let sources = match started {
        Some(Ok(s)) => Some(Arc::new(s)),
        Some(Err(err)) => return Err(err.context("cannot start polling CloudWatch Logs")),
        None => None,
    };
    let mut views = Vec::new();
    if let Some(s) = &sources {
        deps.view.set_sources(Some(s.clone()));
        views = start_inventory_and_probe(
            cfg,
            Some(s),
            inventories,
            metrics,
            ingest,
            &tracker,
            &cancel,
        );
        tracing::info!(targets = cfg.targets.len(), "polling started");
    } else if !cfg.poll_enabled && !cancel.is_cancelled() {
        views =
            start_inventory_and_probe(cfg, None, inventories, metrics, ingest, &tracker, &cancel);
        deps.view
            .push_ready
            .store(true, std::sync::atomic::Ordering::Release);
    }
    Ok(Generation {
        sources,
        views,
        tracker,
        cancel,
    })
}

/// One reload: read and check both files (every problem reported, nothing
/// changed, when one is bad), apply what can change at run time, warn about
/// what needs a restart, and switch to a new generation whose sources
/// continue from the old one's progress. Runs on the serving task, so
/// reloads never overlap.
async fn reload_once(
    running: &mut Config,
    generation: &mut Generation,
    deps: &Deps,
    origin: &'static str,
    root: &CancellationToken,
) -> reload::Outcome {
    let r = &deps.reload;
    tracing::info!(origin, "reloading the configuration");
    let read = match &r.args {
        Some(args) => reload::read(args, &deps.edge),
        None => Err(vec![
            "this exporter was started without a command line to reload from (App::reload_from)"
                .to_owned(),
        ]),
    };
    let read = read.and_then(|new| match &deps.logs_apis {
        Some(apis) if apis.len() != new.targets.len() => Err(vec![format!(
            "targets: the app runs with {} injected CloudWatch Logs APIs; a reload cannot change the number of targets",
            apis.len()
        )]),
        _ => Ok(new),
    });
    let new = match read {
        Ok(c) => c,
        Err(problems) => {
            r.metrics.failed();
            tracing::error!(
                origin,
                problems = problems.len(),
                "reload failed; the running configuration is kept"
            );
            for p in &problems {
                tracing::error!(origin, problem = %p, "reload problem");
            }
            return Err(problems);
        }
    };
    let at_restart = reload::restart_only_changes(running, &new);
    for key in &at_restart {
        tracing::warn!(
            key,
            "changed in the configuration, but takes effect at the next restart; the running value is kept"
        );
    }
    let new = reload::keep_restart_only(running, new);

    // Applied at once.
    deps.metrics.set_limits(new.limits);
    r.handle.set_lifecycle(new.web_enable_lifecycle);
    // The web edge re-reads its files when they change; read them now, so
    // the reload's answer and the next request agree.
    let _ = deps.edge.current();

    // The next generation's inventory views are taken while the current one
    // still polls; polling pauses only for the handover.
    let next_cancel = root.child_token();
    let next_tracker = TaskTracker::new();
    let inventories = first_inventories(
        &new,
        &deps.metrics,
        &deps.ingest,
        &generation.views,
        &deps.view.health,
        &next_cancel,
    )
    .await;
    let paused_at = tokio::time::Instant::now();
    let deadline = paused_at + shutdown::DRAIN_DEADLINE;
    if !generation.stop(deadline).await {
        // Pollers stop at their next await point; one still running keeps
        // its group's progress, which the next generation shares, so an
        // event is still admitted once.
        tracing::warn!(
            deadline = ?shutdown::DRAIN_DEADLINE,
            "the previous sources did not stop before the drain deadline; continuing"
        );
    }
    // Targets removed, or no longer inventoried: nothing of theirs is
    // skipped as a legacy copy any more (cleared only now that their old
    // pollers stopped), and their series go.
    for t in &running.targets {
        let kept = new.inventory.enabled && new.targets.iter().any(|n| n.name == t.name);
        if !kept {
            deps.ingest
                .set_legacy_duplicates(&t.name, std::iter::empty::<String>());
        }
    }
    for t in &running.targets {
        if !new.targets.iter().any(|n| n.name == t.name) {
            deps.view.health.forget_target(&t.name);
            for api in [crate::aws::Api::Logs, crate::aws::Api::Transfer] {
                let _ = deps
                    .metrics
                    .target_up
                    .remove_label_values(&[&t.name, api.as_str()]);
            }
        }
    }
    for (name, view) in &generation.views {
        let kept = new.inventory.enabled && new.targets.iter().any(|n| &n.name == name);
        if !kept {
            inventory::forget_servers(&deps.metrics, &view.borrow());
        }
    }
    // Endpoints taken out of probe.targets lose their series.
    for t in &running.probe.targets {
        if !new.probe.enabled || !new.probe.targets.contains(t) {
            crate::probe::forget(&deps.metrics, t);
        }
    }
    let keep_extra = new.inventory.enabled && new.inventory.add_log_groups;
    let sources = match &generation.sources {
        None => None,
        Some(old) => {
            let next = old
                .reload(
                    new.targets.clone(),
                    deps.logs_apis.clone(),
                    keep_extra,
                    &next_tracker,
                    next_cancel.child_token(),
                )
                .await;
            match next {
                Ok(s) => Some(Arc::new(s)),
                Err(err) => {
                    // Checked before anything stopped; not expected. Nothing
                    // polls now: stop rather than run without sources.
                    tracing::error!(error = %format!("{err:#}"), "cannot restart polling after a reload; stopping");
                    root.cancel();
                    r.metrics.failed();
                    return Err(vec![format!("cannot restart polling: {err:#}")]);
                }
            }
        }
    };
    let paused = paused_at.elapsed();
    if let Some(s) = &sources {
        deps.view.set_sources(Some(s.clone()));
    }
    let views = start_inventory_and_probe(
        &new,
        sources.as_ref(),
        inventories,
        &deps.metrics,
        &deps.ingest,
        &next_tracker,
        &next_cancel,
    );
    *generation = Generation {
        sources,
        views,
        tracker: next_tracker,
        cancel: next_cancel,
    };
    r.metrics.succeeded();
    tracing::info!(
        origin,
        targets = new.targets.len(),
        polling_paused_ms = paused.as_millis() as u64,
        restart_needed = %at_restart.join(","),
        "configuration reloaded"
    );
    deps.view.set_targets(&new.targets);
    *running = new;
    Ok(reload::Applied { at_restart })
}

use crate::config::FIRST_INVENTORY_TIMEOUT;

/// One inventory per target (when enabled) and its first view, taken
/// before polling starts, for all targets at once (so several unreachable
/// ones cost one timeout, not one each). The view's dual-logging servers go
/// to the pipeline at once; a failed or slow first refresh is logged and the
/// refresh loop retries on its interval. Same order as `cfg.targets`.
async fn first_inventories(
    cfg: &Config,
    metrics: &Arc<Metrics>,
    ingest: &Arc<Ingest>,
    previous: &[(String, ServerView)],
    health: &Arc<Health>,
    cancel: &CancellationToken,
) -> Vec<(Inventory, Option<Vec<ServerSummary>>)> {
    if !cfg.inventory.enabled {
        return Vec::new();
    }
    // A reload: each target's inventory continues from its last view.
    let last_view = |name: &str| -> Vec<ServerSummary> {
        previous
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.borrow().as_ref().clone())
            .unwrap_or_default()
    };
    let mut set = tokio::task::JoinSet::new();
    for (i, t) in cfg.targets.iter().enumerate() {
        let (t, metrics, inv_cfg, health, cancel, known) = (
            t.clone(),
            metrics.clone(),
            cfg.inventory.clone(),
            health.clone(),
            cancel.clone(),
            last_view(&t.name),
        );
        set.spawn(async move {
            let sdk = sdk_config(&t).await;
            let mut inv = Inventory::new(&sdk, metrics, inv_cfg).continuing_from(&known);
            // On the landing page from the first call on.
            health.register(inv.health().clone());
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
            ingest.set_legacy_duplicates(&cfg.targets[i].name, dual);
        }
        out[i] = Some((inv, first));
    }
    let mut all = Vec::with_capacity(out.len());
    for (slot, t) in out.into_iter().zip(&cfg.targets) {
        all.push(match slot {
            Some(v) => v,
            None => {
                let sdk = sdk_config(t).await;
                let inv = Inventory::new(&sdk, metrics.clone(), cfg.inventory.clone())
                    .continuing_from(&last_view(&t.name));
                health.register(inv.health().clone());
                (inv, None)
            }
        });
    }
    all
}

/// Starts the Transfer API inventory of every target (it hands structured
/// log destinations to the sources) and the endpoint prober. Returns each
/// target's inventory view, which a reload continues from.
fn start_inventory_and_probe(
    cfg: &Config,
    sources: Option<&Arc<Sources>>,
    inventories: Vec<(Inventory, Option<Vec<ServerSummary>>)>,
    metrics: &Arc<Metrics>,
    ingest: &Arc<Ingest>,
    tracker: &TaskTracker,
    cancel: &CancellationToken,
) -> Views {
    let mut feeds = Vec::new();
    let mut views = Vec::new();
    for (t, (inv, first)) in cfg.targets.iter().zip(inventories) {
        // Structured log destinations go to the poller, when it runs.
        let sink: Option<inventory::GroupSink> = sources.map(|sources| {
            let (sources, target) = (sources.clone(), t.name.clone());
            let sink: inventory::GroupSink =
                Arc::new(move |groups| sources.add_groups(&target, groups));
            sink
        });
        let rx = inventory::spawn(tracker, cancel.child_token(), inv, sink, first);
        tracker.spawn(follow_legacy_duplicates(
            rx.clone(),
            t.name.clone(),
            cfg.inventory.clone(),
            ingest.clone(),
            cancel.child_token(),
        ));
        views.push((t.name.clone(), rx.clone()));
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
    views
}

/// Keeps the ingest boundary's set of dual-logging servers (whose legacy lines it
/// skips) in step with every inventory refresh of one target.
async fn follow_legacy_duplicates(
    mut servers: tokio::sync::watch::Receiver<Arc<Vec<ServerSummary>>>,
    target: String,
    cfg: InventoryConfig,
    ingest: Arc<Ingest>,
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
        ingest.set_legacy_duplicates(&target, dual);
    }
}

/// The SDK configuration of a target, named after it (see [`crate::aws::sdk`]).
async fn sdk_config(t: &config::Target) -> crate::aws::sdk::TargetSdk {
    crate::aws::sdk::load(crate::aws::sdk::AwsTarget {
        name: &t.name,
        region: &t.region,
        endpoint_url: t.endpoint_url.as_deref(),
        role_arn: t.role_arn.as_deref(),
    })
    .await
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
