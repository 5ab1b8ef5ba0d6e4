//! The one error map: every SDK error of every AWS API becomes one of a few
//! bounded [`ErrorKind`]s — the `outcome` label of
//! `aws_transfer_exporter_api_calls_total` and the `kind` of
//! `aws_transfer_exporter_poll_errors_total` — and a message for humans.
//!
//! Why one map: the same condition arrives under several codes (AWS JSON
//! services say `ExpiredTokenException`, query services `ExpiredToken`), and
//! before this module the two clients disagreed (`ExpiredTokenException` was
//! `denied` for CloudWatch Logs and `error` for Transfer). [`classify`] is
//! generic over the operation error type, so every operation of every client
//! goes through the same function.
//!
//! Messages use `Display` only: each error of the source chain once, joined
//! by `": "`. [`aws_smithy_types::error::display::DisplayErrorContext`] walks
//! the chain the same way but appends a `Debug` dump of the whole error,
//! which is what turned one log line into a screen of Rust structs.

use std::error::Error as StdError;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_cloudwatchlogs::error::{ProvideErrorMetadata, SdkError};

/// Why an API call failed. Bounded: these are metric label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// ThrottlingException, HTTP 429: back off and retry.
    Throttled,
    /// The credentials are fine but not allowed to do this (IAM policy,
    /// SCP, resource policy): retried next round only.
    Denied,
    /// No usable credentials: none in the chain, an expired or invalid
    /// token, a bad signature, or a role that cannot be assumed. Not
    /// retried inside a call: waiting milliseconds does not make
    /// credentials appear.
    Credentials,
    /// ResourceNotFoundException: the log group or server is gone.
    NotFound,
    /// 5xx, timeouts, connection failures: back off and retry.
    Transient,
    /// Anything else (a request we built wrong, an unknown error).
    Other,
}

/// Every kind, in label order (for tests and the landing page).
pub const ERROR_KINDS: [ErrorKind; 6] = [
    ErrorKind::Throttled,
    ErrorKind::Denied,
    ErrorKind::Credentials,
    ErrorKind::NotFound,
    ErrorKind::Transient,
    ErrorKind::Other,
];

impl ErrorKind {
    /// Label value for `api_calls{outcome}` and `poll_errors{kind}`.
    /// `Other` stays `error`: the label value is part of the metric contract.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Throttled => "throttled",
            ErrorKind::Denied => "denied",
            ErrorKind::Credentials => "credentials",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Transient => "transient",
            ErrorKind::Other => "error",
        }
    }

    /// Whether waiting and calling again may help within the same call.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Throttled | ErrorKind::Transient)
    }

    /// What an operator can do about it, for the log and the landing page.
    pub fn fix(self) -> &'static str {
        match self {
            ErrorKind::Credentials => "the AWS credentials were refused: refresh an expired session or token, check the access key and the clock, and check role_arn (the role must trust the exporter's identity)",
            ErrorKind::Denied => "the credentials work but are not allowed this call: grant the IAM permissions in deploy/iam/ to the exporter's role",
            ErrorKind::Throttled => "the account's API quota is exhausted: lower api_rate_per_second or raise poll_interval",
            ErrorKind::NotFound => "the resource is gone: check the configured log groups and servers",
            ErrorKind::Transient => "the API did not answer: check network access to the endpoint (VPC endpoint, proxy, endpoint_url); retried automatically",
            ErrorKind::Other => "unexpected error: see the message; report it if it repeats",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An API failure: its kind and a message for logs and the landing page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    /// What an operator can do about it (see [`ApiError::fix`]).
    fix: &'static str,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
            fix: kind.fix(),
        }
    }

    /// The same error with a more precise fix than its kind's.
    pub fn with_fix(mut self, fix: &'static str) -> ApiError {
        self.fix = fix;
        self
    }

    /// Kind, message and fix of an SDK error of any operation of any client.
    pub fn from_sdk<E, R>(err: &SdkError<E, R>) -> ApiError
    where
        E: ProvideErrorMetadata + StdError + 'static,
        R: HttpStatus + std::fmt::Debug + 'static,
    {
        let e = ApiError::new(classify(err), describe(err));
        if e.kind == ErrorKind::Credentials && no_credentials_in_chain(err) {
            e.with_fix(NO_CREDENTIALS_FIX)
        } else {
            e
        }
    }

    /// What an operator can do about it: the kind's advice, or for an empty
    /// credential chain, what the chain tried.
    pub fn fix(&self) -> &'static str {
        self.fix
    }
}

/// The advice for an empty credential chain, naming what was tried (the
/// order of aws-config's default chain).
pub const NO_CREDENTIALS_FIX: &str = "no AWS credentials found: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or attach a role; the exporter tried: environment, profile, web identity, container, instance metadata";

/// Whether the chain had no credentials at all (rather than failing to
/// load or refresh them): the provider's `CredentialsNotLoaded`.
fn no_credentials_in_chain(err: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(CredentialsError::CredentialsNotLoaded(_)) =
            e.downcast_ref::<CredentialsError>()
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Maps an SDK error to a kind. Codes are matched by name because the
/// services send the same condition under several codes; the credentials
/// chain's own failures (no credentials found, a provider that failed or
/// timed out, a role that cannot be assumed) are found by type anywhere in
/// the error's source chain, however the runtime wrapped them (today:
/// `DispatchFailure` around a `ConnectorError` around the
/// [`CredentialsError`]).
pub fn classify<E, R>(err: &SdkError<E, R>) -> ErrorKind
where
    E: ProvideErrorMetadata + StdError + 'static,
    R: HttpStatus + std::fmt::Debug + 'static,
{
    match err {
        SdkError::ServiceError(ctx) => {
            let kind = classify_code(ctx.err().code());
            if kind != ErrorKind::Other {
                return kind;
            }
            // Unknown codes with a 5xx status are the server's trouble, not
            // ours (moto's unimplemented ListUsers is one).
            classify_status(ctx.raw().status_code())
        }
        _ if is_credentials_error(err) => ErrorKind::Credentials,
        SdkError::ResponseError(ctx) => match classify_status(ctx.raw().status_code()) {
            ErrorKind::Other => ErrorKind::Transient,
            k => k,
        },
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => ErrorKind::Transient,
        _ => ErrorKind::Other,
    }
}

/// Whether a credentials provider's error is anywhere in `err`'s sources.
pub fn is_credentials_error(err: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<CredentialsError>().is_some() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Error codes (the `__type` of an awsJson error, the `Code` of a query
/// error) to kinds.
pub fn classify_code(code: Option<&str>) -> ErrorKind {
    match code.unwrap_or("") {
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "RequestThrottled"
        | "LimitExceededException" => ErrorKind::Throttled,
        "AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation" => ErrorKind::Denied,
        "ExpiredTokenException"
        | "ExpiredToken"
        | "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "IncompleteSignature"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "MissingAuthenticationToken"
        | "MissingAuthenticationTokenException"
        | "RequestExpired" => ErrorKind::Credentials,
        "ResourceNotFoundException" => ErrorKind::NotFound,
        "ServiceUnavailableException"
        | "ServiceUnavailable"
        | "InternalFailure"
        | "InternalServerError"
        | "InternalServiceError"
        | "RequestTimeout"
        | "RequestTimeoutException" => ErrorKind::Transient,
        _ => ErrorKind::Other,
    }
}

/// HTTP status to kinds, for errors whose code says nothing.
pub fn classify_status(status: u16) -> ErrorKind {
    match status {
        429 => ErrorKind::Throttled,
        401 => ErrorKind::Credentials,
        403 => ErrorKind::Denied,
        500..=599 => ErrorKind::Transient,
        _ => ErrorKind::Other,
    }
}

/// The HTTP status of a raw response (so [`classify`] is generic and
/// testable without a client).
pub trait HttpStatus {
    fn status_code(&self) -> u16;
}

/// Every generated client's `HttpResponse` is this one runtime type.
impl HttpStatus for aws_sdk_cloudwatchlogs::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// A one-line message for humans: `Code: message` for a service error,
/// otherwise every error in the source chain by its `Display`, once each,
/// joined by `": "`. Never a `Debug` dump, so never a credential either.
pub fn describe<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + StdError + 'static,
    R: std::fmt::Debug + 'static,
{
    match err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            match (e.code(), e.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_owned(),
                _ => chain(e),
            }
        }
        other => chain(other),
    }
}

/// Display of `err` and its sources, skipping a part that repeats the
/// previous one (wrappers often display their source's text again).
pub fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        let s = e.to_string();
        if !s.is_empty() && parts.last().is_none_or(|p| !p.ends_with(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatchlogs::operation::describe_log_groups::DescribeLogGroupsError;
    use aws_sdk_cloudwatchlogs::operation::filter_log_events::FilterLogEventsError;
    use aws_sdk_transfer::operation::describe_server::DescribeServerError;
    use aws_sdk_transfer::operation::list_servers::ListServersError;
    use aws_sdk_transfer::operation::list_users::ListUsersError;
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn raw(status: u16) -> HttpResponse {
        HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty())
    }

    fn meta(code: &str) -> ErrorMetadata {
        ErrorMetadata::builder().code(code).message("msg").build()
    }

    /// The same function over the error types of both clients' operations.
    fn kinds_for(code: &str, status: u16) -> Vec<(&'static str, ErrorKind)> {
        vec![
            (
                "logs FilterLogEvents",
                classify(&SdkError::service_error(
                    FilterLogEventsError::generic(meta(code)),
                    raw(status),
                )),
            ),
            (
                "logs DescribeLogGroups",
                classify(&SdkError::service_error(
                    DescribeLogGroupsError::generic(meta(code)),
                    raw(status),
                )),
            ),
            (
                "transfer ListServers",
                classify(&SdkError::service_error(
                    ListServersError::generic(meta(code)),
                    raw(status),
                )),
            ),
            (
                "transfer DescribeServer",
                classify(&SdkError::service_error(
                    DescribeServerError::generic(meta(code)),
                    raw(status),
                )),
            ),
            (
                "transfer ListUsers",
                classify(&SdkError::service_error(
                    ListUsersError::generic(meta(code)),
                    raw(status),
                )),
            ),
        ]
    }

    /// One table, every code, both services: each code maps to the same
    /// kind whichever client's operation it came from.
    #[test]
    fn each_error_code_maps_the_same_for_both_services() {
        let table: &[(&str, u16, ErrorKind)] = &[
            ("ThrottlingException", 400, ErrorKind::Throttled),
            ("Throttling", 400, ErrorKind::Throttled),
            ("TooManyRequestsException", 400, ErrorKind::Throttled),
            ("LimitExceededException", 400, ErrorKind::Throttled),
            ("AccessDeniedException", 400, ErrorKind::Denied),
            ("AccessDenied", 403, ErrorKind::Denied),
            ("UnauthorizedOperation", 403, ErrorKind::Denied),
            ("ExpiredTokenException", 400, ErrorKind::Credentials),
            ("ExpiredToken", 403, ErrorKind::Credentials),
            ("InvalidClientTokenId", 403, ErrorKind::Credentials),
            ("UnrecognizedClientException", 400, ErrorKind::Credentials),
            ("IncompleteSignature", 400, ErrorKind::Credentials),
            ("InvalidSignatureException", 400, ErrorKind::Credentials),
            ("SignatureDoesNotMatch", 403, ErrorKind::Credentials),
            ("MissingAuthenticationToken", 403, ErrorKind::Credentials),
            ("ResourceNotFoundException", 400, ErrorKind::NotFound),
            ("ServiceUnavailableException", 503, ErrorKind::Transient),
            ("InternalServiceError", 500, ErrorKind::Transient),
            ("InternalFailure", 500, ErrorKind::Transient),
            ("SomethingNew", 500, ErrorKind::Transient),
            ("SomethingNew", 401, ErrorKind::Credentials),
            ("SomethingNew", 429, ErrorKind::Throttled),
            ("InvalidParameterException", 400, ErrorKind::Other),
            ("InvalidRequestException", 400, ErrorKind::Other),
        ];
        for (code, status, want) in table {
            for (operation, got) in kinds_for(code, *status) {
                assert_eq!(got, *want, "code {code:?} status {status} via {operation}");
            }
        }
    }

    /// How the smithy runtime surfaces "no credentials in the chain": a
    /// dispatch failure around a connector error around the provider's
    /// `CredentialsError` (checked against real clients in `logs` and
    /// `transfer` tests). Every variant of the provider's error counts.
    #[test]
    fn credentials_provider_errors_are_credentials_for_both_services() {
        let provider_errors = || {
            vec![
                CredentialsError::not_loaded("no providers in chain provided credentials"),
                CredentialsError::provider_error("AccessDenied: not authorized to assume role"),
                CredentialsError::invalid_configuration("profile loop"),
                CredentialsError::provider_timed_out(std::time::Duration::from_secs(5)),
            ]
        };
        let wrap = |e: CredentialsError| ConnectorError::other(Box::new(e), None);
        for e in provider_errors() {
            let what = e.to_string();
            let logs: SdkError<FilterLogEventsError, HttpResponse> =
                SdkError::dispatch_failure(wrap(e));
            assert_eq!(classify(&logs), ErrorKind::Credentials, "logs: {what}");
        }
        for e in provider_errors() {
            let what = e.to_string();
            let transfer: SdkError<ListServersError, HttpResponse> =
                SdkError::construction_failure(e);
            assert_eq!(
                classify(&transfer),
                ErrorKind::Credentials,
                "transfer: {what}"
            );
        }
        // A connection failure that is not about credentials stays transient.
        let io: SdkError<ListServersError, HttpResponse> = SdkError::dispatch_failure(
            ConnectorError::io(Box::new(std::io::Error::other("connection refused"))),
        );
        assert_eq!(classify(&io), ErrorKind::Transient);
    }

    #[test]
    fn messages_are_display_not_debug() {
        let e: SdkError<ListServersError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::other(
                Box::new(CredentialsError::not_loaded(
                    "no providers in chain provided credentials",
                )),
                None,
            ));
        let msg = describe(&e);
        assert!(
            msg.contains("no providers in chain provided credentials"),
            "{msg}"
        );
        for debug_marker in ["CredentialsNotLoaded", "{", "Some("] {
            assert!(!msg.contains(debug_marker), "Debug dump in {msg:?}");
        }
        let s: SdkError<ListServersError, HttpResponse> = SdkError::service_error(
            ListServersError::generic(
                ErrorMetadata::builder()
                    .code("ExpiredTokenException")
                    .message("The security token included in the request is expired")
                    .build(),
            ),
            raw(400),
        );
        assert_eq!(
            describe(&s),
            "ExpiredTokenException: The security token included in the request is expired"
        );
        // The fix says what was tried only when there were no credentials.
        assert_eq!(ApiError::from_sdk(&e).fix(), NO_CREDENTIALS_FIX);
        assert_eq!(ApiError::from_sdk(&s).fix(), ErrorKind::Credentials.fix());
    }

    #[test]
    fn outcome_labels_match_the_metric_contract() {
        let labels: Vec<&str> = ERROR_KINDS.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            labels,
            [
                "throttled",
                "denied",
                "credentials",
                "not_found",
                "transient",
                "error"
            ]
        );
        for k in ERROR_KINDS {
            assert_eq!(
                k.is_retryable(),
                matches!(k, ErrorKind::Throttled | ErrorKind::Transient),
                "{k}"
            );
            assert!(!k.fix().is_empty());
        }
    }

    #[test]
    fn statuses_map_to_bounded_kinds() {
        let table: &[(u16, ErrorKind)] = &[
            (429, ErrorKind::Throttled),
            (401, ErrorKind::Credentials),
            (403, ErrorKind::Denied),
            (500, ErrorKind::Transient),
            (503, ErrorKind::Transient),
            (400, ErrorKind::Other),
        ];
        for (status, want) in table {
            assert_eq!(classify_status(*status), *want, "status {status}");
        }
    }
}
