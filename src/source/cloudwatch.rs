//! The narrow view of CloudWatch Logs the poller needs ([`LogsApi`]: one page
//! of events, one page of group names) and its one SDK implementation
//! ([`SdkLogs`]). SDK errors map to a few bounded [`ErrorKind`]s, which are
//! label values of `aws_transfer_exporter_api_calls_total{outcome}`.
//!
//! Benchmarks and tests may implement [`LogsApi`] in process; integration
//! tests use the SDK implementation against moto.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_cloudwatchlogs::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;

/// A boxed future, so [`LogsApi`] can be used as `dyn LogsApi`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Longest a single API call may take before it counts as `transient` and is
/// retried. FilterLogEvents on a large group answers within seconds; a call
/// hanging longer is better abandoned than allowed to stall the round.
pub const API_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
/// Connecting to a regional endpoint takes milliseconds; three seconds leaves
/// room for a slow VPC endpoint without waiting on a dead one.
pub const API_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// One log event as FilterLogEvents returns it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogEvent {
    pub event_id: String,
    pub log_stream: String,
    pub timestamp_ms: i64,
    pub message: String,
}

/// One page of FilterLogEvents. Pages may be empty while `next_token` is set.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub events: Vec<LogEvent>,
    pub next_token: Option<String>,
}

/// One page of DescribeLogGroups: group names and the token for the next.
#[derive(Debug, Clone, Default)]
pub struct GroupsPage {
    pub names: Vec<String>,
    pub next_token: Option<String>,
}

/// Why an API call failed. Bounded: these are metric label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// ThrottlingException, HTTP 429: back off and retry.
    Throttled,
    /// Access denied, bad or expired credentials: retried next round only.
    Denied,
    /// ResourceNotFoundException: the log group is gone.
    NotFound,
    /// 5xx, timeouts, connection failures: back off and retry.
    Transient,
    /// Anything else (a request we built wrong, an unknown error).
    Other,
}

impl ErrorKind {
    /// Label value for `api_calls{outcome}` and `poll_errors{kind}`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Throttled => "throttled",
            ErrorKind::Denied => "denied",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Transient => "transient",
            ErrorKind::Other => "error",
        }
    }

    /// Whether waiting and calling again may help within the same round.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Throttled | ErrorKind::Transient)
    }
}

/// An API failure: its kind and a message for logs and the landing page.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
        }
    }
}

/// Operation names used as the `operation` label.
pub const OP_FILTER: &str = "FilterLogEvents";
pub const OP_DESCRIBE: &str = "DescribeLogGroups";

/// What the poller needs from CloudWatch Logs, nothing more.
pub trait LogsApi: Send + Sync + 'static {
    /// One page of FilterLogEvents over `[start_ms, end_ms]` (inclusive).
    fn filter_page<'a>(
        &'a self,
        group: &'a str,
        start_ms: i64,
        end_ms: i64,
        next_token: Option<String>,
        limit: i32,
    ) -> BoxFuture<'a, Result<Page, ApiError>>;

    /// One page of DescribeLogGroups for a name prefix.
    fn describe_groups_page<'a>(
        &'a self,
        prefix: &'a str,
        next_token: Option<String>,
    ) -> BoxFuture<'a, Result<GroupsPage, ApiError>>;
}

/// Maps an SDK error to a kind. Codes are matched by name because the
/// services send the same condition under several codes.
pub fn classify_sdk_error<E, R>(err: &SdkError<E, R>) -> ErrorKind
where
    E: ProvideErrorMetadata,
    R: HttpStatus,
{
    match err {
        SdkError::ServiceError(ctx) => {
            let kind = classify_code(ctx.err().code());
            if kind != ErrorKind::Other {
                return kind;
            }
            classify_status(ctx.raw().status_code())
        }
        SdkError::ResponseError(ctx) => {
            let k = classify_status(ctx.raw().status_code());
            if k == ErrorKind::Other {
                ErrorKind::Transient
            } else {
                k
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => ErrorKind::Transient,
        _ => ErrorKind::Other,
    }
}

/// Error codes (the `__type` of an awsJson error) to kinds.
pub fn classify_code(code: Option<&str>) -> ErrorKind {
    match code.unwrap_or("") {
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "RequestThrottled"
        | "LimitExceededException" => ErrorKind::Throttled,
        "AccessDeniedException"
        | "AccessDenied"
        | "UnauthorizedOperation"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "ExpiredTokenException"
        | "ExpiredToken"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "MissingAuthenticationToken" => ErrorKind::Denied,
        "ResourceNotFoundException" => ErrorKind::NotFound,
        "ServiceUnavailableException"
        | "ServiceUnavailable"
        | "InternalFailure"
        | "InternalServerError"
        | "RequestTimeout"
        | "RequestTimeoutException" => ErrorKind::Transient,
        _ => ErrorKind::Other,
    }
}

/// HTTP status to kinds, for errors whose code says nothing.
pub fn classify_status(status: u16) -> ErrorKind {
    match status {
        429 => ErrorKind::Throttled,
        401 | 403 => ErrorKind::Denied,
        500..=599 => ErrorKind::Transient,
        _ => ErrorKind::Other,
    }
}

/// The HTTP status of a raw response (so [`classify_sdk_error`] is generic).
pub trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_sdk_cloudwatchlogs::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

fn describe<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            match (e.code(), e.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_owned(),
                _ => e.to_string(),
            }
        }
        other => {
            // Display of SdkError is terse ("dispatch failure"); walk the sources.
            let mut s = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(e) = src {
                s.push_str(": ");
                s.push_str(&e.to_string());
                src = e.source();
            }
            s
        }
    }
}

/// The SDK implementation: one CloudWatch Logs client per target.
#[derive(Clone, Debug)]
pub struct SdkLogs {
    client: aws_sdk_cloudwatchlogs::Client,
}

impl SdkLogs {
    /// Builds a client from aws-config's default chain (environment,
    /// profile, SSO, web identity, container and instance metadata) for
    /// `region`, optionally at `endpoint_url`, optionally assuming `role_arn`
    /// with the default chain's credentials.
    ///
    /// The SDK's own retries are disabled: every attempt must pass our rate
    /// limiter and be counted, and our backoff is shared by all groups.
    pub async fn new(region: &str, endpoint_url: Option<&str>, role_arn: Option<&str>) -> SdkLogs {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_owned()))
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(API_CONNECT_TIMEOUT)
                    .operation_attempt_timeout(API_ATTEMPT_TIMEOUT)
                    .build(),
            );
        if let Some(url) = endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let mut conf = loader.load().await;
        if let Some(role) = role_arn {
            let provider = aws_config::sts::AssumeRoleProvider::builder(role)
                .session_name("aws-transfer-exporter")
                .configure(&conf)
                .build()
                .await;
            conf = conf
                .into_builder()
                .credentials_provider(
                    aws_sdk_cloudwatchlogs::config::SharedCredentialsProvider::new(provider),
                )
                .build();
        }
        SdkLogs {
            client: aws_sdk_cloudwatchlogs::Client::new(&conf),
        }
    }

    /// Wraps an existing client (tests with a hand-built config).
    pub fn from_client(client: aws_sdk_cloudwatchlogs::Client) -> SdkLogs {
        SdkLogs { client }
    }
}

impl LogsApi for SdkLogs {
    fn filter_page<'a>(
        &'a self,
        group: &'a str,
        start_ms: i64,
        end_ms: i64,
        next_token: Option<String>,
        limit: i32,
    ) -> BoxFuture<'a, Result<Page, ApiError>> {
        Box::pin(async move {
            let out = self
                .client
                .filter_log_events()
                .log_group_name(group)
                .start_time(start_ms)
                .end_time(end_ms)
                .limit(limit)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| ApiError::new(classify_sdk_error(&e), describe(&e)))?;
            let events = out
                .events()
                .iter()
                .map(|e| LogEvent {
                    event_id: e.event_id().unwrap_or_default().to_owned(),
                    log_stream: e.log_stream_name().unwrap_or_default().to_owned(),
                    timestamp_ms: e.timestamp().unwrap_or_default(),
                    message: e.message().unwrap_or_default().to_owned(),
                })
                .collect();
            Ok(Page {
                events,
                next_token: out
                    .next_token()
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned),
            })
        })
    }

    fn describe_groups_page<'a>(
        &'a self,
        prefix: &'a str,
        next_token: Option<String>,
    ) -> BoxFuture<'a, Result<GroupsPage, ApiError>> {
        Box::pin(async move {
            let mut req = self.client.describe_log_groups().set_next_token(next_token);
            if !prefix.is_empty() {
                req = req.log_group_name_prefix(prefix);
            }
            let out = req
                .send()
                .await
                .map_err(|e| ApiError::new(classify_sdk_error(&e), describe(&e)))?;
            Ok(GroupsPage {
                names: out
                    .log_groups()
                    .iter()
                    .filter_map(|g| g.log_group_name().map(str::to_owned))
                    .collect(),
                next_token: out
                    .next_token()
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_map_to_bounded_kinds() {
        let table: &[(Option<&str>, ErrorKind)] = &[
            (Some("ThrottlingException"), ErrorKind::Throttled),
            (Some("AccessDeniedException"), ErrorKind::Denied),
            (Some("UnrecognizedClientException"), ErrorKind::Denied),
            (Some("ExpiredTokenException"), ErrorKind::Denied),
            (Some("ResourceNotFoundException"), ErrorKind::NotFound),
            (Some("ServiceUnavailableException"), ErrorKind::Transient),
            (Some("InvalidParameterException"), ErrorKind::Other),
            (None, ErrorKind::Other),
        ];
        for (code, want) in table {
            assert_eq!(classify_code(*code), *want, "code {code:?}");
        }
    }

    #[test]
    fn statuses_map_to_bounded_kinds() {
        let table: &[(u16, ErrorKind)] = &[
            (429, ErrorKind::Throttled),
            (403, ErrorKind::Denied),
            (500, ErrorKind::Transient),
            (503, ErrorKind::Transient),
            (400, ErrorKind::Other),
        ];
        for (status, want) in table {
            assert_eq!(classify_status(*status), *want, "status {status}");
        }
    }

    #[test]
    fn outcome_labels_match_the_metric_contract() {
        // metrics.rs documents outcome ∈ success|throttled|denied|not_found|transient|error
        for k in [
            ErrorKind::Throttled,
            ErrorKind::Denied,
            ErrorKind::NotFound,
            ErrorKind::Transient,
            ErrorKind::Other,
        ] {
            assert!(
                ["throttled", "denied", "not_found", "transient", "error"].contains(&k.as_str()),
                "{k:?}"
            );
        }
    }
}
