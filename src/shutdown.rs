//! SIGINT/SIGTERM → cancellation.
//!
//! The first signal completes [`signals`], the shutdown future `main` gives
//! the app, which cancels its root token; every task holds a child token and
//! stops at its next await point. A second signal while draining exits at
//! once (the operator asked twice).

pub use crate::config::defaults::DRAIN_DEADLINE;

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

/// The daemon's shutdown future: completes at the first SIGINT/SIGTERM;
/// from then on a second signal exits the process at once with status 130
/// (the operator asked twice), without draining.
pub async fn signals() {
    let sig = wait_for_signal().await;
    tracing::info!(signal = sig.as_str(), "shutting down");
    tokio::spawn(async {
        let sig = wait_for_signal().await;
        tracing::warn!(
            signal = sig.as_str(),
            "second signal while draining; exiting now"
        );
        std::process::exit(130);
    });
}
