//! Errors: [`FirehoseError`] for starting the receiver (shown to a human),
//! [`Reject`] for a request that is not acknowledged, each with its HTTP
//! status, its `requests_total` outcome and the `errorMessage` Firehose
//! records in its error logs. The status choice is the contract: only 200
//! means delivered, 413 is never retried (the data is gone), everything
//! else is retried until the stream's retry duration runs out.

use std::path::PathBuf;

use hyper::StatusCode;

/// Why the receiver cannot start.
#[derive(Debug, thiserror::Error)]
pub enum FirehoseError {
    #[error("the Firehose receiver needs an access key file (firehose.access_key_file); to accept unauthenticated requests anyway, set firehose.allow_unauthenticated")]
    NoAccessKey,
    #[error("firehose access key file {path}: {reason}")]
    AccessKeyFile { path: PathBuf, reason: String },
    #[error("firehose configuration: {0}")]
    Config(String),
}

/// Why a request was not acknowledged with 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Missing or wrong access key: 401, the same answer for both.
    Unauthorized,
    /// The body (as sent, or after `Content-Encoding: gzip`) is over the
    /// cap: 413, which Firehose does not retry. Only ever for that.
    TooLarge,
    /// Not a Firehose delivery request (not JSON of the right shape, bad
    /// gzip body, truncated): 400. Retried by Firehose, so a proxy fault
    /// that mangled one attempt heals on the next.
    BadRequest(&'static str),
    /// Shutting down: 503, retried (by another replica or after restart).
    ShuttingDown,
    /// Too many requests in flight: 503, retried.
    Overloaded,
    /// The same request id is being processed right now (a retry after a
    /// timeout raced the original): 503, so the retry comes back after the
    /// original finished and is then acknowledged as a duplicate.
    InFlight,
    /// Counted, but the state write that must come before the
    /// acknowledgement failed: 503, so Firehose retries; the retry is
    /// recognized by its request id and acknowledged once a write succeeds.
    StateNotSaved,
    /// Not `POST`: 405.
    MethodNotAllowed,
    /// Unknown path: 404.
    NotFound,
}

impl Reject {
    pub fn status(self) -> StatusCode {
        match self {
            Reject::Unauthorized => StatusCode::UNAUTHORIZED,
            Reject::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reject::BadRequest(_) => StatusCode::BAD_REQUEST,
            Reject::ShuttingDown
            | Reject::Overloaded
            | Reject::InFlight
            | Reject::StateNotSaved => StatusCode::SERVICE_UNAVAILABLE,
            Reject::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Reject::NotFound => StatusCode::NOT_FOUND,
        }
    }

    /// The `outcome` label of `aws_transfer_exporter_firehose_requests_total`.
    pub fn outcome(self) -> &'static str {
        match self {
            Reject::Unauthorized => "unauthorized",
            Reject::TooLarge => "too_large",
            Reject::BadRequest(_) | Reject::MethodNotAllowed | Reject::NotFound => "bad_request",
            Reject::ShuttingDown
            | Reject::Overloaded
            | Reject::InFlight
            | Reject::StateNotSaved => "unavailable",
        }
    }

    /// `errorMessage` of the answer. Never names a key, and the same for a
    /// missing and a wrong one.
    pub fn message(self) -> &'static str {
        match self {
            Reject::Unauthorized => "access key missing or not accepted",
            Reject::TooLarge => "request body is larger than this receiver's max_body_bytes",
            Reject::BadRequest(why) => why,
            Reject::ShuttingDown => "receiver is shutting down; retry",
            Reject::StateNotSaved => "counted, but the receiver could not save its state; retry",
            Reject::Overloaded => "receiver is busy (too many requests in flight); retry",
            Reject::InFlight => "this request id is being processed; retry",
            Reject::MethodNotAllowed => "only POST is accepted here",
            Reject::NotFound => "not found (Firehose delivers to POST /firehose)",
        }
    }
}
