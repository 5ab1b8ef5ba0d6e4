//! The event model: what a source hands the pipeline ([`RawEvent`]) and what
//! parsing makes of it ([`Parsed`]).
//!
//! Server events (the bulk of every log group) borrow their text from the
//! message wherever it needs no unescaping, so parsing one allocates
//! nothing in the common case; the rarer connector, AS2 and workflow events
//! own their strings. Unknown fields are skipped without allocating.

use std::borrow::Cow;

use serde::Serialize;

/// One CloudWatch Logs event as a source delivers it. Only `message` is
/// always meaningful; the other fields may be empty when the input (a JSON
/// Lines dump, stdin) did not carry them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawEvent {
    /// Log group name, e.g. `/aws/transfer/s-0123456789abcdef0`.
    pub log_group: String,
    /// Log stream name: `ERRORS`, `<server-id>/<user>`, `<user>.<session-id>`, …
    pub log_stream: String,
    /// CloudWatch's event id; opaque (moto: small integers, AWS: 56 digits).
    pub event_id: String,
    /// Event time in milliseconds since the epoch (CloudWatch's timestamp;
    /// structured server events carry no time of their own).
    pub timestamp_ms: i64,
    pub message: String,
}

/// Which of the log formats a message was written in. Detected per event,
/// because one log group can hold several (reference §1.1, §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Structured JSON server event (`activity-type`, kebab-case keys).
    Structured,
    /// Logging-role text line (`[<stream>] <ACTIVITY> Key=Value …`).
    Legacy,
    /// SFTP connector transfer/listing line (`connector-id`, `operation`).
    Connector,
    /// Connector throttling line (`{"type":"ExecutionThrottled","connectorId":…}`).
    ConnectorThrottle,
    /// AS2 message line (`as2-message-id`).
    As2,
    /// Managed workflow line (`type`, `workflowId`).
    Workflow,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Structured => "structured",
            Format::Legacy => "legacy",
            Format::Connector => "connector",
            Format::ConnectorThrottle => "connector_throttle",
            Format::As2 => "as2",
            Format::Workflow => "workflow",
        }
    }
}

/// Server activity types (reference §2.1). The set is open: anything else is
/// kept as [`Activity::Other`] and never rejected.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Activity {
    Connected,
    Disconnected,
    AuthFailure,
    Error,
    ExitReason,
    Open,
    Close,
    PartialClose,
    CreateSymlink,
    Delete,
    Mkdir,
    Rmdir,
    Rename,
    Setstat,
    TlsResumeFailure,
    ConnectionRejected,
    KexFailure,
    Other(String),
}

impl Activity {
    /// Every known activity, for tables and tests.
    pub const KNOWN: &'static [Activity] = &[
        Activity::Connected,
        Activity::Disconnected,
        Activity::AuthFailure,
        Activity::Error,
        Activity::ExitReason,
        Activity::Open,
        Activity::Close,
        Activity::PartialClose,
        Activity::CreateSymlink,
        Activity::Delete,
        Activity::Mkdir,
        Activity::Rmdir,
        Activity::Rename,
        Activity::Setstat,
        Activity::TlsResumeFailure,
        Activity::ConnectionRejected,
        Activity::KexFailure,
    ];

    pub fn from_wire(s: &str) -> Activity {
        match s {
            "CONNECTED" => Activity::Connected,
            "DISCONNECTED" => Activity::Disconnected,
            "AUTH_FAILURE" => Activity::AuthFailure,
            "ERROR" => Activity::Error,
            "EXIT_REASON" => Activity::ExitReason,
            "OPEN" => Activity::Open,
            "CLOSE" => Activity::Close,
            "PARTIAL_CLOSE" => Activity::PartialClose,
            "CREATE_SYMLINK" => Activity::CreateSymlink,
            "DELETE" => Activity::Delete,
            "MKDIR" => Activity::Mkdir,
            "RMDIR" => Activity::Rmdir,
            "RENAME" => Activity::Rename,
            "SETSTAT" => Activity::Setstat,
            "TLS_RESUME_FAILURE" => Activity::TlsResumeFailure,
            "CONNECTION_REJECTED" => Activity::ConnectionRejected,
            "KEX_FAILURE" => Activity::KexFailure,
            other => Activity::Other(other.to_owned()),
        }
    }

    /// The wire name: borrowed from a static for known activities, so a
    /// label or an [`Outcome`](crate::pipeline::Outcome) needs no copy.
    pub fn name(&self) -> Cow<'static, str> {
        match self {
            Activity::Other(s) => Cow::Owned(s.clone()),
            known => Cow::Borrowed(known.known_str()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Activity::Other(s) => s,
            known => known.known_str(),
        }
    }

    /// Position in [`Activity::KNOWN`]; `None` for [`Activity::Other`].
    /// Lets per-activity tables be arrays instead of maps.
    pub fn index(&self) -> Option<usize> {
        Some(match self {
            Activity::Connected => 0,
            Activity::Disconnected => 1,
            Activity::AuthFailure => 2,
            Activity::Error => 3,
            Activity::ExitReason => 4,
            Activity::Open => 5,
            Activity::Close => 6,
            Activity::PartialClose => 7,
            Activity::CreateSymlink => 8,
            Activity::Delete => 9,
            Activity::Mkdir => 10,
            Activity::Rmdir => 11,
            Activity::Rename => 12,
            Activity::Setstat => 13,
            Activity::TlsResumeFailure => 14,
            Activity::ConnectionRejected => 15,
            Activity::KexFailure => 16,
            Activity::Other(_) => return None,
        })
    }

    fn known_str(&self) -> &'static str {
        match self {
            Activity::Connected => "CONNECTED",
            Activity::Disconnected => "DISCONNECTED",
            Activity::AuthFailure => "AUTH_FAILURE",
            Activity::Error => "ERROR",
            Activity::ExitReason => "EXIT_REASON",
            Activity::Open => "OPEN",
            Activity::Close => "CLOSE",
            Activity::PartialClose => "PARTIAL_CLOSE",
            Activity::CreateSymlink => "CREATE_SYMLINK",
            Activity::Delete => "DELETE",
            Activity::Mkdir => "MKDIR",
            Activity::Rmdir => "RMDIR",
            Activity::Rename => "RENAME",
            Activity::Setstat => "SETSTAT",
            Activity::TlsResumeFailure => "TLS_RESUME_FAILURE",
            Activity::ConnectionRejected => "CONNECTION_REJECTED",
            Activity::KexFailure => "KEX_FAILURE",
            Activity::Other(_) => "",
        }
    }
}

/// A server event (SFTP/FTPS/FTP/AS2 server), structured or legacy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerEvent<'a> {
    pub activity: Option<Activity>,
    /// From `resource-arn` (structured) — `None` for legacy lines, whose
    /// server comes from the log group name during attribution.
    pub server_id: Option<Cow<'a, str>>,
    pub region: Option<Cow<'a, str>>,
    pub account_id: Option<Cow<'a, str>>,
    /// `user` (structured) / `User` (legacy). Attacker-chosen on AUTH_FAILURE.
    pub user: Option<Cow<'a, str>>,
    pub session_id: Option<Cow<'a, str>>,
    pub message: Option<Cow<'a, str>>,
    pub method: Option<Cow<'a, str>>,
    pub operation: Option<Cow<'a, str>>,
    pub path: Option<Cow<'a, str>>,
    pub bytes_in: Option<u64>,
    pub bytes_out: Option<u64>,
    /// Never used as a label (chosen by whoever reaches the port).
    pub source_ip: Option<Cow<'a, str>>,
    /// Legacy only: the stream token that prefixed the line, if any.
    pub stream_token: Option<Cow<'a, str>>,
}

/// An SFTP connector line (reference §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectorEvent {
    pub connector_id: Option<String>,
    pub operation: Option<String>,
    pub status_code: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub bytes: Option<u64>,
    pub account_id: Option<String>,
}

/// An AS2 message line (reference §5.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct As2Event {
    pub server_id: Option<String>,
    pub connector_id: Option<String>,
    pub status_code: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub bytes: Option<u64>,
}

/// A managed-workflow line (reference §5.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkflowEvent {
    /// `type`: ExecutionStarted, StepErrored, …
    pub kind: String,
    pub workflow_id: Option<String>,
    pub execution_id: Option<String>,
    pub server_id: Option<String>,
    pub user: Option<String>,
    pub session_id: Option<String>,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
}

/// A successfully parsed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<'a> {
    Server {
        format: Format,
        event: ServerEvent<'a>,
    },
    Connector(ConnectorEvent),
    ConnectorThrottled {
        connector_id: Option<String>,
    },
    As2(As2Event),
    Workflow(WorkflowEvent),
}

impl Parsed<'_> {
    pub fn format(&self) -> Format {
        match self {
            Parsed::Server { format, .. } => *format,
            Parsed::Connector(_) => Format::Connector,
            Parsed::ConnectorThrottled { .. } => Format::ConnectorThrottle,
            Parsed::As2(_) => Format::As2,
            Parsed::Workflow(_) => Format::Workflow,
        }
    }
}

/// Why a message could not be parsed. Bounded set: these are label values of
/// `aws_transfer_exporter_unparsed_events_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParseError {
    /// Starts with `{` but is not valid JSON.
    InvalidJson,
    /// Valid JSON object with none of the keys that identify a format.
    UnknownJson,
    /// Text that is not `[<stream>] <ACTIVITY> Key=Value …`.
    UnknownText,
    /// Empty or whitespace-only message.
    Empty,
    /// Longer than [`crate::parse::MAX_MESSAGE_BYTES`].
    TooLong,
}

impl ParseError {
    pub fn as_str(self) -> &'static str {
        match self {
            ParseError::InvalidJson => "invalid_json",
            ParseError::UnknownJson => "unknown_json",
            ParseError::UnknownText => "unknown_text",
            ParseError::Empty => "empty",
            ParseError::TooLong => "too_long",
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_the_position_in_known() {
        for (i, a) in Activity::KNOWN.iter().enumerate() {
            assert_eq!(a.index(), Some(i), "{a:?}");
        }
        assert_eq!(Activity::Other("X".into()).index(), None);
    }
}
