//! The one AWS layer: everything that talks to an AWS API goes through here.
//!
//! - [`sdk`]: the one SDK config builder (credential chain, Region, assumed
//!   role, endpoint URL, timeouts, retry policy) and the clients built from it;
//! - [`errors`]: the one error map, SDK errors → bounded [`ErrorKind`]s (the
//!   `outcome` label of `aws_transfer_exporter_api_calls_total`);
//! - [`call`]: the one counted-call wrapper (token bucket, backoff with
//!   jitter, counting, health) and the retry policy;
//! - [`paginate`]: the one pagination helper;
//! - [`health`]: per target and API, up or failing, since when, and the fix;
//! - [`logs`], [`transfer`]: a narrow trait per AWS API and its SDK
//!   implementation (one file each).
//!
//! The layer depends on [`crate::metrics`] only; sources and the inventory
//! depend on it, never the other way round.

pub mod call;
pub mod errors;
pub mod health;
pub mod logs;
pub mod paginate;
pub mod sdk;
pub mod transfer;

use std::future::Future;
use std::pin::Pin;

pub use call::{CallError, Caller, RetryPolicy, TokenBucket};
pub use errors::{ApiError, ErrorKind};
pub use health::{ApiHealth, ApiStatus, Failure, Health};

/// A boxed future, so the API traits can be used as `dyn` objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which AWS API a call or a health entry is about: the `api` label of
/// `aws_transfer_exporter_target_up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Api {
    /// CloudWatch Logs (FilterLogEvents, DescribeLogGroups).
    Logs,
    /// The Transfer Family API (ListServers, DescribeServer, ListUsers, …).
    Transfer,
}

impl Api {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Logs => "logs",
            Api::Transfer => "transfer",
        }
    }
}

impl std::fmt::Display for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
