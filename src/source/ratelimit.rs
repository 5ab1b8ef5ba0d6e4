//! The API budget of the source: the shared token bucket and the counted
//! call live in [`crate::aws::call`]; these re-exports keep the source's
//! paths.

pub use crate::aws::call::{
    backoff, call, CallError, Caller, RetryPolicy, TokenBucket, BACKOFF_BASE, BACKOFF_CAP,
    MAX_ATTEMPTS,
};
