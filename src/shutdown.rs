//! SIGINT/SIGTERM → cancellation.
//!
//! The first signal cancels the root [`CancellationToken`]; every task holds
//! a child token and stops at its next await point. A second signal while
//! draining exits at once (the operator asked twice).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How long shutdown may take after the first signal before the daemon gives
/// up waiting for tasks and exits anyway. Kubernetes and systemd send SIGKILL
/// after 30 s and 90 s by default; 10 s leaves room for the state file and
/// an in-flight scrape and keeps restarts quick.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Which signal asked us to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }
}

/// Waits for SIGINT or SIGTERM. Installing the handlers cannot fail on Unix
/// unless the process is out of file descriptors; then we fall back to
/// Ctrl-C only rather than refusing to run.
pub async fn wait_for_signal() -> Signal {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => Signal::Interrupt,
                    _ = term.recv() => Signal::Terminate,
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only SIGINT stops the daemon");
                let _ = tokio::signal::ctrl_c().await;
                Signal::Interrupt
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        Signal::Interrupt
    }
}

/// Spawns the signal watcher: the first signal cancels `token`, a second one
/// exits the process with status 130 without draining.
pub fn install(token: CancellationToken) {
    tokio::spawn(async move {
        let sig = wait_for_signal().await;
        tracing::info!(signal = sig.as_str(), "shutting down");
        token.cancel();
        let sig = wait_for_signal().await;
        tracing::warn!(
            signal = sig.as_str(),
            "second signal while draining; exiting now"
        );
        std::process::exit(130);
    });
}
