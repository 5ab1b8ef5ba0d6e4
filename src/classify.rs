//! Classification: every failure event gets a `category`, a `cause` and a
//! one-line operator advice. The vocabulary is a public API (metric label
//! values); see the README's cause table.
//!
//! All rules live in the tables below, read top to bottom, first match wins.
//! To add a cause: add a row (and a test row in `tests` with the verbatim
//! message). Matching is exact or anchored (prefix) wherever the message is
//! known, so no rule can match another cause's message; the table test
//! checks that every rule's own sample matches *only* that rule.

use crate::event::{Activity, As2Event, ConnectorEvent, ServerEvent, WorkflowEvent};

/// The result of classifying a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    pub category: &'static str,
    pub cause: &'static str,
    pub advice: &'static str,
}

pub const UNRECOGNIZED: &str = "unrecognized";

impl Classification {
    /// Whether the cause proves that the named user exists on the server, so
    /// the name from the event may become a label. AWS logs a key
    /// fingerprint (key_mismatch) only for an existing user; every other
    /// AUTH_FAILURE may carry a name a stranger typed.
    pub fn proves_user_exists(&self) -> bool {
        self.cause == "key_mismatch"
    }
}

/// How a rule matches the event's message (after trimming whitespace and a
/// trailing full stop).
#[derive(Debug, Clone, Copy)]
enum Msg {
    /// Any message, or none.
    Any,
    /// Exactly this text.
    Exact(&'static str),
    /// Starts with this text.
    Prefix(&'static str),
    /// `<KEYTYPE> SHA256:<base64>` (or `MD5:<hex:…>`): the client's key
    /// fingerprint, logged when the user exists but the key is not theirs.
    KeyFingerprint,
}

struct Rule {
    activities: &'static [Activity],
    msg: Msg,
    category: &'static str,
    cause: &'static str,
    advice: &'static str,
}

const AUTH: &[Activity] = &[Activity::AuthFailure];
const ERROR: &[Activity] = &[Activity::Error];
const OPERATION: &[Activity] = &[Activity::Error, Activity::ExitReason];
const NEGOTIATION: &[Activity] = &[Activity::KexFailure, Activity::Error, Activity::ExitReason];

/// Server-event rules (reference §4.1). Order matters: specific messages
/// first, then the per-activity fallbacks.
#[rustfmt::skip]
const SERVER_RULES: &[Rule] = &[
    // ---- auth ----
    Rule { activities: AUTH, msg: Msg::Exact("Authentication failure"),
        category: "auth", cause: "unknown_user",
        advice: "No such user on this server: check the user exists on the server the client targets (and the client uses the right server)." },
    Rule { activities: AUTH, msg: Msg::Exact("The user is unrecognized"),
        category: "auth", cause: "unknown_user",
        advice: "No such user on this server: check the user exists on the server the client targets (and the client uses the right server)." },
    Rule { activities: AUTH, msg: Msg::KeyFingerprint,
        category: "auth", cause: "key_mismatch",
        advice: "The user exists but the offered key is not registered for them: compare the logged fingerprint (the client's key) with the user's SSH public keys; a partner may have rotated their key." },
    Rule { activities: AUTH, msg: Msg::Exact("Invalid user name or password"),
        category: "auth", cause: "invalid_password",
        advice: "Bad password or unknown user (indistinguishable): check the credentials; with a custom identity provider read its logs (/aws/lambda/<function> or API Gateway)." },
    // ---- negotiation ----
    Rule { activities: NEGOTIATION, msg: Msg::Exact("no matching key exchange method found"),
        category: "negotiation", cause: "kex_mismatch",
        advice: "The client offers only key exchange methods outside the server's security policy: upgrade the client or choose a security policy that allows them." },
    Rule { activities: NEGOTIATION, msg: Msg::Exact("no matching host key type found"),
        category: "negotiation", cause: "host_key_mismatch",
        advice: "The client accepts none of the server's host key types: add a host key of a type the client accepts, or update the client." },
    Rule { activities: &[Activity::TlsResumeFailure], msg: Msg::Any,
        category: "negotiation", cause: "tls_resume_required",
        advice: "The FTPS client lacks the TLS session resumption the server enforces: change the client, or set TlsSessionResumptionMode=ENABLED on the server." },
    Rule { activities: &[Activity::ConnectionRejected], msg: Msg::Any,
        category: "negotiation", cause: "connection_rejected",
        advice: "Connection refused before login, likely no PROXY protocol v2 header under PROXY_PROTOCOL_V2_ENFORCED: route every client path through the NLB." },
    // ---- iam ----
    Rule { activities: OPERATION, msg: Msg::Exact("Access denied"),
        category: "iam", cause: "access_denied",
        advice: "The user's IAM role or session policy lacks S3 (or KMS, for SSE-KMS uploads) permissions for this bucket/prefix: add the missing actions; request ids in the event locate the S3 call." },
    Rule { activities: OPERATION, msg: Msg::Prefix("Unable to AssumeRole for user"),
        category: "iam", cause: "assume_role_failed",
        advice: "The user's role does not trust transfer.amazonaws.com, was deleted, or its aws:SourceArn condition names server/… instead of user/<server-id>/*: restore the trust policy or the role." },
    // ---- storage ----
    Rule { activities: OPERATION, msg: Msg::Prefix("Error performing readdir"),
        category: "storage", cause: "bucket_not_found",
        advice: "The addressed S3 bucket does not exist: check the bucket in the user's home directory or path exists (and was not deleted)." },
    Rule { activities: OPERATION, msg: Msg::Prefix("Permission denied"),
        category: "storage", cause: "permission_denied",
        advice: "EFS POSIX permissions refused the operation: fix the file's owner/mode or the user's PosixProfile (uid/gid)." },
    Rule { activities: OPERATION, msg: Msg::Prefix("AWS Transfer does not support random access writes"),
        category: "storage", cause: "random_access_write",
        advice: "The client writes one file over several connections or out of order: turn off parallel/segmented upload in the client." },
    // ---- session ----
    Rule { activities: &[Activity::PartialClose], msg: Msg::Any,
        category: "session", cause: "partial_transfer",
        advice: "The client disconnected with a file open; the partial file was stored: check the client and the network path." },
    Rule { activities: &[Activity::ExitReason], msg: Msg::Any,
        category: "session", cause: "abnormal_exit",
        advice: "The session ended on an unexpected error: read the event's message." },
    // ---- fallbacks: the category follows the activity ----
    Rule { activities: AUTH, msg: Msg::Any,
        category: "auth", cause: UNRECOGNIZED,
        advice: "Authentication failed for a reason this exporter does not know yet: read the message; with a custom identity provider read its logs." },
    Rule { activities: &[Activity::KexFailure], msg: Msg::Any,
        category: "negotiation", cause: UNRECOGNIZED,
        advice: "SSH negotiation failed for a reason this exporter does not know yet: read the message and compare the client's offer with the security policy." },
    Rule { activities: ERROR, msg: Msg::Any,
        category: "session", cause: UNRECOGNIZED,
        advice: "An operation failed for a reason this exporter does not know yet: read the message, operation and path." },
];

/// Documented SFTP connector failure codes (reference §5.1), lower-cased,
/// with what to check.
#[rustfmt::skip]
const CONNECTOR_CODES: &[(&str, &str, &str)] = &[
    ("ASSUME_ROLE_ERROR", "assume_role_error", "Check the connector's access role: its trust of transfer.amazonaws.com and its permissions."),
    ("CONNECTION_ERROR", "connection_error", "Check the partner URL, DNS, the partner's firewall and the trusted host keys."),
    ("TIMEOUT_ERROR", "timeout_error", "The partner did not answer in time: check the partner's reachability and load."),
    ("SEND_FILE_NOT_FOUND", "send_file_not_found", "The file to send does not exist in S3: check the send file paths."),
    ("RETRIEVE_FILE_NOT_FOUND", "retrieve_file_not_found", "The file to retrieve does not exist on the partner server: check the retrieve path."),
    ("FILE_NOT_FOUND", "file_not_found", "A file does not exist: check the paths on both sides."),
    ("DIRECTORY_NOT_FOUND", "directory_not_found", "A directory does not exist: check the directory paths on both sides."),
    ("PATH_NOT_FOUND", "path_not_found", "A path does not exist: check the paths on both sides."),
    ("READ_FILE_ERROR", "read_file_error", "Reading failed: check read permissions on that side (S3 policy or the partner's file permissions)."),
    ("WRITE_FILE_ERROR", "write_file_error", "Writing failed: check write permissions on that side (S3 policy or the partner's file permissions)."),
    ("LIST_DIRECTORY_ERROR", "list_directory_error", "Listing failed: check list permissions on the partner directory."),
    ("RENAME_ERROR", "rename_error", "Rename failed: check permissions on the partner server."),
    ("DELETE_ERROR", "delete_error", "Delete failed: check permissions on the partner server."),
    ("UNSUPPORTED_OPERATION_ERROR", "unsupported_operation_error", "The partner server does not support the operation: read failure-message."),
    ("INTERNAL_ERROR", "internal_error", "Transfer Family internal error: read failure-message; retry, and open a support case if it persists."),
    ("UNKNOWN_ERROR", "unknown_error", "Unknown error: read failure-message."),
];

const PARTNER: &str =
    "Check the partner's AS2 endpoint: URL, DNS, reachability and its HTTP response.";
const CERTS: &str = "Check certificates, profiles and the agreement: keys for signing/encryption must match on both sides.";
const MDN: &str = "The partner's MDN rejected the message: check with the partner which check failed (certificates, compression, security).";
const RESOURCES: &str = "Check the Transfer Family resources and IAM: agreement, connector, server state, the access role and its S3 paths.";
const MESSAGE: &str =
    "Check the message itself: size, duplication, compression and request format.";

/// Documented AS2 failure codes (reference §5.2), lower-cased, with advice.
#[rustfmt::skip]
const AS2_CODES: &[(&str, &str, &str)] = &[
    ("HTTP_ERROR_RESPONSE_FROM_PARTNER", "http_error_response_from_partner", PARTNER),
    ("UNABLE_TO_CONNECT_TO_REMOTE_HOST_OR_IP", "unable_to_connect_to_remote_host_or_ip", PARTNER),
    ("UNABLE_TO_RESOLVE_HOSTNAME", "unable_to_resolve_hostname", PARTNER),
    ("UNABLE_RESOLVE_HOST_TO_IP_ADDRESS", "unable_resolve_host_to_ip_address", PARTNER),
    ("INVALID_URL_FORMAT", "invalid_url_format", PARTNER),
    ("INVALID_ENDPOINT_PROTOCOL", "invalid_endpoint_protocol", PARTNER),
    ("DECRYPT_FAILED", "decrypt_failed", CERTS),
    ("DECRYPT_FAILED_INVALID_SMIME_FORMAT", "decrypt_failed_invalid_smime_format", CERTS),
    ("DECRYPT_FAILED_NO_DECRYPTION_KEY_FOUND", "decrypt_failed_no_decryption_key_found", CERTS),
    ("DECRYPT_FAILED_UNSUPPORTED_ENCRYPTION_ALG", "decrypt_failed_unsupported_encryption_alg", CERTS),
    ("ENCRYPTION_FAILED", "encryption_failed", CERTS),
    ("ENCRYPT_FAILED_NO_ENCRYPTION_KEY_FOUND", "encrypt_failed_no_encryption_key_found", CERTS),
    ("SIGNING_FAILED", "signing_failed", CERTS),
    ("SIGNING_FAILED_NO_SIGNING_KEY_FOUND", "signing_failed_no_signing_key_found", CERTS),
    ("VERIFICATION_FAILED", "verification_failed", CERTS),
    ("VERIFICATION_FAILED_NO_MATCHING_KEY_FOUND", "verification_failed_no_matching_key_found", CERTS),
    ("INSUFFICENT_MESSAGE_SECURITY_UNENCRYPTED", "insufficent_message_security_unencrypted", CERTS),
    ("MDN_RESPONSE_INDICATES_AUTHENTICATION_FAILED", "mdn_response_indicates_authentication_failed", MDN),
    ("MDN_RESPONSE_INDICATES_DECOMPRESSION_FAILED", "mdn_response_indicates_decompression_failed", MDN),
    ("MDN_RESPONSE_INDICATES_DECRYPTION_FAILED", "mdn_response_indicates_decryption_failed", MDN),
    ("MDN_RESPONSE_INDICATES_INSUFFICIENT_MESSAGE_SECURITY", "mdn_response_indicates_insufficient_message_security", MDN),
    ("MDN_RESPONSE_INDICATES_INTEGRITY_CHECK_FAILED", "mdn_response_indicates_integrity_check_failed", MDN),
    ("AGREEMENT_NOT_FOUND", "agreement_not_found", RESOURCES),
    ("CONNECTOR_NOT_FOUND", "connector_not_found", RESOURCES),
    ("SERVER_NOT_FOUND", "server_not_found", RESOURCES),
    ("SERVER_NOT_ONLINE", "server_not_online", RESOURCES),
    ("ACCESS_DENIED", "access_denied", RESOURCES),
    ("CREDENTIALS_RETRIEVAL_FAILED", "credentials_retrieval_failed", RESOURCES),
    ("PATH_NOT_FOUND", "path_not_found", RESOURCES),
    ("SEND_FILE_NOT_FOUND", "send_file_not_found", RESOURCES),
    ("DECOMPRESSION_FAILED", "decompression_failed", MESSAGE),
    ("DUPLICATE_MESSAGE", "duplicate_message", MESSAGE),
    ("FILE_SIZE_TOO_LARGE", "file_size_too_large", MESSAGE),
    ("INVALID_REQUEST", "invalid_request", MESSAGE),
];

/// AS2 failure codes AWS has renamed, as (old name, current name). Events
/// from senders that still write the old name must land on the same cause
/// as the current one, not in `unrecognized`; the cause label is always the
/// current name, so dashboards and alerts need one series per cause.
///
/// Only documented renames belong here: a pair needs the same row (same
/// error text and resolution) under the old name in an earlier edition of the
/// AWS Transfer Family User Guide and under the new name today.
/// - `ERROR_DECRYPT_UNSUPPORTED_ENCRYPTION_ALG` → `DECRYPT_FAILED_UNSUPPORTED_ENCRYPTION_ALG`:
///   "AS2 error codes" table of the 2023 guide (awsdocs/aws-transfer-user-guide,
///   `doc_source/as2-config-etc.md`, the last edition published on GitHub:
///   "SMIME Payload Decryption requested using unsupported algorithm") against
///   the current "Monitoring AS2 usage" page (reference §5.2).
///
/// Every other code of the 2023 table keeps its name today. Misspellings AWS
/// still documents (`INSUFFICENT_…`) are current names, not renames.
#[rustfmt::skip]
const AS2_CODE_ALIASES: &[(&str, &str)] = &[
    ("ERROR_DECRYPT_UNSUPPORTED_ENCRYPTION_ALG", "DECRYPT_FAILED_UNSUPPORTED_ENCRYPTION_ALG"),
];

/// SFTP connector failure codes AWS has renamed (old name, current name);
/// none documented so far. Kept so a rename is one row, handled like AS2's.
const CONNECTOR_CODE_ALIASES: &[(&str, &str)] = &[];

const CONNECTOR_HOST_KEY: Classification = Classification {
    category: "connector",
    cause: "host_key_mismatch",
    advice: "Host key negotiation with the partner failed: compare the algorithms the partner offers with the connector's trusted host keys and security policy.",
};
const CONNECTOR_THROTTLED: Classification = Classification {
    category: "connector",
    cause: "throttled",
    advice: "Connector executions were throttled: spread StartFileTransfer calls or ask for a quota increase.",
};

fn normalize(message: &str) -> &str {
    let m = message.trim();
    m.strip_suffix('.').unwrap_or(m)
}

fn is_key_fingerprint(m: &str) -> bool {
    let Some((kind, fp)) = m.split_once(' ') else {
        return false;
    };
    let kind_ok = !kind.is_empty()
        && kind.len() <= 32
        && kind
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    let fp_ok = if let Some(b64) = fp.strip_prefix("SHA256:") {
        !b64.is_empty()
            && b64
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
    } else if let Some(hex) = fp.strip_prefix("MD5:") {
        !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
    } else {
        false
    };
    kind_ok && fp_ok
}

impl Msg {
    fn matches(self, message: &str) -> bool {
        match self {
            Msg::Any => true,
            Msg::Exact(t) => message == t,
            Msg::Prefix(t) => message.starts_with(t),
            Msg::KeyFingerprint => is_key_fingerprint(message),
        }
    }
}

/// Is this activity a failure? Known failures, plus unknown activity types
/// whose name says so (the set is open; a new `*_FAILURE` must not vanish).
pub fn is_failure(activity: &Activity) -> bool {
    match activity {
        Activity::AuthFailure
        | Activity::Error
        | Activity::ExitReason
        | Activity::PartialClose
        | Activity::TlsResumeFailure
        | Activity::ConnectionRejected
        | Activity::KexFailure => true,
        Activity::Other(name) => {
            name.contains("FAIL") || name.contains("ERROR") || name.contains("REJECT")
        }
        _ => false,
    }
}

/// Classifies a server event; `None` for non-failures (CONNECTED, OPEN, …).
pub fn server(ev: &ServerEvent<'_>) -> Option<Classification> {
    let activity = ev.activity.as_ref()?;
    if !is_failure(activity) {
        return None;
    }
    let message = normalize(ev.message.as_deref().unwrap_or(""));
    for rule in SERVER_RULES {
        if rule.activities.contains(activity) && rule.msg.matches(message) {
            return Some(Classification {
                category: rule.category,
                cause: rule.cause,
                advice: rule.advice,
            });
        }
    }
    // An unknown failure activity (e.g. a future `FOO_FAILURE`).
    Some(Classification {
        category: "session",
        cause: UNRECOGNIZED,
        advice: "A failure activity this exporter does not know yet: read the event.",
    })
}

/// The cause and advice of a failure code: its row in `table`, found by its
/// current name or by an old name listed in `aliases` (case-insensitive).
fn code_lookup(
    table: &'static [(&'static str, &'static str, &'static str)],
    aliases: &'static [(&'static str, &'static str)],
    code: Option<&str>,
) -> Option<(&'static str, &'static str)> {
    let code = code?.trim();
    let code = aliases
        .iter()
        .find(|(old, _)| old.eq_ignore_ascii_case(code))
        .map_or(code, |(_, current)| *current);
    table
        .iter()
        .find(|(c, _, _)| c.eq_ignore_ascii_case(code))
        .map(|(_, cause, advice)| (*cause, *advice))
}

/// Classifies a connector line; `None` unless its status is FAILED.
pub fn connector(ev: &ConnectorEvent) -> Option<Classification> {
    if !ev
        .status_code
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("FAILED"))
    {
        return None;
    }
    let message = ev.failure_message.as_deref().unwrap_or("");
    if message.starts_with("Key exchange negotiation failed") && message.contains("host key") {
        return Some(CONNECTOR_HOST_KEY);
    }
    Some(match code_lookup(CONNECTOR_CODES, CONNECTOR_CODE_ALIASES, ev.failure_code.as_deref()) {
        Some((cause, advice)) => Classification { category: "connector", cause, advice },
        None => Classification {
            category: "connector",
            cause: UNRECOGNIZED,
            advice: "A connector failure code this exporter does not know yet: read failure-code and failure-message.",
        },
    })
}

/// Classifies a connector throttling line.
pub fn connector_throttled() -> Classification {
    CONNECTOR_THROTTLED
}

/// Classifies an AS2 line; `None` unless its status is FAILED (intermediate
/// states PROCESSING/MDN_* and COMPLETED are not failures).
pub fn as2(ev: &As2Event) -> Option<Classification> {
    if !ev
        .status_code
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("FAILED"))
    {
        return None;
    }
    Some(match code_lookup(AS2_CODES, AS2_CODE_ALIASES, ev.failure_code.as_deref()) {
        Some((cause, advice)) => Classification { category: "as2", cause, advice },
        None => Classification {
            category: "as2",
            cause: UNRECOGNIZED,
            advice: "An AS2 failure code this exporter does not know yet: read failure-code and failure-message.",
        },
    })
}

/// Classifies a workflow line; `None` unless it is StepErrored,
/// ExecutionErrored or ExecutionThrottled.
pub fn workflow(ev: &WorkflowEvent) -> Option<Classification> {
    let (cause, advice) = match ev.kind.as_str() {
        "StepErrored" => ("step_failed", "A workflow step failed: read details.errorType/errorMessage (COPY across Regions, tagging EFS files and FIPS-mode decryption are known causes)."),
        "ExecutionErrored" => ("execution_failed", "The workflow execution failed: read the error; 'Service failure on starting workflow' right after a change clears in about 10 minutes."),
        "ExecutionThrottled" => ("throttled", "Workflow executions were throttled: reduce concurrent uploads that start workflows or ask for a quota increase."),
        _ => return None,
    };
    Some(Classification {
        category: "workflow",
        cause,
        advice,
    })
}

/// Every (category, cause, advice) this module can return, for docs and tests.
pub fn vocabulary() -> Vec<Classification> {
    let mut v: Vec<Classification> = SERVER_RULES
        .iter()
        .map(|r| Classification {
            category: r.category,
            cause: r.cause,
            advice: r.advice,
        })
        .collect();
    v.extend(
        CONNECTOR_CODES
            .iter()
            .map(|(_, cause, advice)| Classification {
                category: "connector",
                cause,
                advice,
            }),
    );
    v.extend([CONNECTOR_HOST_KEY, CONNECTOR_THROTTLED]);
    v.extend(AS2_CODES.iter().map(|(_, cause, advice)| Classification {
        category: "as2",
        cause,
        advice,
    }));
    for kind in ["StepErrored", "ExecutionErrored", "ExecutionThrottled"] {
        v.extend(workflow(&WorkflowEvent {
            kind: kind.into(),
            ..Default::default()
        }));
    }
    let mut seen = std::collections::HashSet::new();
    v.retain(|c| seen.insert((c.category, c.cause)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Parsed;
    use crate::parse::parse;

    const ARN: &str = "arn:aws:transfer:eu-west-1:111122223333:server/s-0123456789abcdef0";

    /// Parse then classify; `None` for non-failures.
    fn run(message: &str) -> Option<(&'static str, &'static str)> {
        let parsed = parse(message).unwrap_or_else(|e| panic!("parse failed ({e}) for: {message}"));
        let c = match &parsed {
            Parsed::Server { event, .. } => server(event),
            Parsed::Connector(ev) => connector(ev),
            Parsed::ConnectorThrottled { .. } => Some(connector_throttled()),
            Parsed::As2(ev) => as2(ev),
            Parsed::Workflow(ev) => workflow(ev),
        };
        c.map(|c| (c.category, c.cause))
    }

    fn j(body: &str) -> String {
        format!(r#"{{"resource-arn":"{ARN}",{body}}}"#)
    }

    #[test]
    fn every_cause_row_in_every_format() {
        let cases: Vec<(String, Option<(&str, &str)>)> = vec![
            // auth/unknown_user: structured [observed] and legacy [third-party], verbatim
            (format!(r#"{{"method":"publickey","activity-type":"AUTH_FAILURE","source-ip":"203.0.113.50","resource-arn":"{ARN}","message":"Authentication failure","user":"no-such-user"}}"#), Some(("auth", "unknown_user"))),
            ("ERRORS AUTH_FAILURE Method=publickey User=no-such-user Message=\"The user is unrecognized\" SourceIP=203.0.113.50".into(), Some(("auth", "unknown_user"))),
            // auth/key_mismatch, verbatim, and other key types
            (format!(r#"{{"method":"publickey","activity-type":"AUTH_FAILURE","source-ip":"198.51.100.7","resource-arn":"{ARN}","message":"RSA SHA256:5xnBpqyCABcNrzDPG/YfQw50ZKAtzcetXTX1MOrJslQ","user":"jdoe"}}"#), Some(("auth", "key_mismatch"))),
            ("ERRORS AUTH_FAILURE Method=publickey User=jdoe Message=\"RSA SHA256:ZROXXaS/VKEhJHy2VMLhMfUz0aONCnC6Ws7Z175uUzc\" SourceIP=198.51.100.7".into(), Some(("auth", "key_mismatch"))),
            (j(r#""activity-type":"AUTH_FAILURE","user":"jdoe","message":"ED25519 SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU""#), Some(("auth", "key_mismatch"))),
            (j(r#""activity-type":"AUTH_FAILURE","user":"jdoe","message":"ECDSA SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU""#), Some(("auth", "key_mismatch"))),
            (j(r#""activity-type":"AUTH_FAILURE","user":"jdoe","message":"ECDSA-SK SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU""#), Some(("auth", "key_mismatch"))),
            // auth/invalid_password
            (j(r#""activity-type":"AUTH_FAILURE","method":"password","user":"jdoe","message":"Invalid user name or password""#), Some(("auth", "invalid_password"))),
            ("ERRORS AUTH_FAILURE Method=password User=jdoe Message=\"Invalid user name or password\" SourceIP=198.51.100.7".into(), Some(("auth", "invalid_password"))),
            // auth/unrecognized: a message no rule knows, and a near-miss of a fingerprint
            (j(r#""activity-type":"AUTH_FAILURE","user":"jdoe","message":"Something new""#), Some(("auth", "unrecognized"))),
            (j(r#""activity-type":"AUTH_FAILURE","user":"jdoe","message":"rsa SHA256:abc""#), Some(("auth", "unrecognized"))),
            (j(r#""activity-type":"AUTH_FAILURE","user":"jdoe","message":"Authentication failure for jdoe""#), Some(("auth", "unrecognized"))),
            // negotiation
            (format!(r#"{{"activity-type":"KEX_FAILURE","source-ip":"192.0.2.30","resource-arn":"{ARN}","message":"no matching key exchange method found","kex":"diffie-hellman-group1-sha1,diffie-hellman-group-exchange-sha1"}}"#), Some(("negotiation", "kex_mismatch"))),
            (j(r#""activity-type":"KEX_FAILURE","message":"no matching host key type found","kex":"ssh-dss""#), Some(("negotiation", "host_key_mismatch"))),
            ("ERRORS KEX_FAILURE SourceIP=192.0.2.30 Message=\"no matching host key type found\"".into(), Some(("negotiation", "host_key_mismatch"))),
            (j(r#""activity-type":"KEX_FAILURE","message":"kex protocol error""#), Some(("negotiation", "unrecognized"))),
            (j(r#""activity-type":"TLS_RESUME_FAILURE","source-ip":"192.0.2.30""#), Some(("negotiation", "tls_resume_required"))),
            ("ERRORS TLS_RESUME_FAILURE SourceIP=192.0.2.30".into(), Some(("negotiation", "tls_resume_required"))),
            (j(r#""activity-type":"CONNECTION_REJECTED","source-ip":"192.0.2.30""#), Some(("negotiation", "connection_rejected"))),
            ("ERRORS CONNECTION_REJECTED SourceIP=192.0.2.30".into(), Some(("negotiation", "connection_rejected"))),
            // iam, verbatim observed events
            (format!(r#"{{"activity-type":"ERROR","resource-arn":"{ARN}","message":"Access denied","session-id":"26315c40e111fcf04b00"}}"#), Some(("iam", "access_denied"))),
            (format!(r#"{{"s3extended-request-id":"…","path":"/example-bucket/jdoe","activity-type":"ERROR","resource-arn":"{ARN}","message":"Access denied","request-id":"…","operation":"MKDIR","session-id":"26315c40e111fcf04b00"}}"#), Some(("iam", "access_denied"))),
            ("jdoe.0a700c01575303e3 ERROR Message=\"Access denied\" Operation=CLOSE Path=/example-bucket/jdoe/in/c.csv BytesIn=27".into(), Some(("iam", "access_denied"))),
            ("ERROR Message=\"Access denied\" Operation=CLOSE Path=/example-bucket/jdoe/in/c.csv BytesIn=27".into(), Some(("iam", "access_denied"))),
            (format!(r#"{{"path":"/example-bucket/jdoe/new","activity-type":"ERROR","resource-arn":"{ARN}","message":"Unable to AssumeRole for user","operation":"MKDIR","session-id":"bd7b5b22d6092852d0d8"}}"#), Some(("iam", "assume_role_failed"))),
            ("jdoe.0a700c01575303e3 ERROR Message=\"Unable to AssumeRole for user\" Operation=MKDIR".into(), Some(("iam", "assume_role_failed"))),
            // storage
            (format!(r#"{{"activity-type":"ERROR","resource-arn":"{ARN}","message":"Error performing readdir","session-id":"365df67affe36e4b123d"}}"#), Some(("storage", "bucket_not_found"))),
            ("jdoe.0a700c01575303e3 ERROR Message=\"Error performing readdir\"".into(), Some(("storage", "bucket_not_found"))),
            (j(r#""activity-type":"ERROR","message":"Permission denied","path":"/fs-0123456789abcdef0/home/jdoe","session-id":"a""#), Some(("storage", "permission_denied"))),
            ("jdoe.0a700c01575303e3 ERROR Message=\"Permission denied\" Path=/fs-0123/home/jdoe".into(), Some(("storage", "permission_denied"))),
            (j(r#""activity-type":"ERROR","message":"AWS Transfer does not support random access writes to S3 objects.","session-id":"a""#), Some(("storage", "random_access_write"))),
            ("jdoe.0a700c01575303e3 ERROR Message=\"AWS Transfer does not support random access writes to S3 objects.\"".into(), Some(("storage", "random_access_write"))),
            // session
            (j(r#""activity-type":"PARTIAL_CLOSE","path":"/b/k","bytes-in":"121","session-id":"a""#), Some(("session", "partial_transfer"))),
            ("jdoe.0a700c01575303e3 PARTIAL_CLOSE Path=/b/k BytesIn=121".into(), Some(("session", "partial_transfer"))),
            (j(r#""activity-type":"EXIT_REASON","message":"Unexpected error","session-id":"a""#), Some(("session", "abnormal_exit"))),
            ("jdoe.0a700c01575303e3 EXIT_REASON Message=\"Unexpected error\"".into(), Some(("session", "abnormal_exit"))),
            (j(r#""activity-type":"ERROR","message":"Something else failed","session-id":"a""#), Some(("session", "unrecognized"))),
            (j(r#""activity-type":"ERROR","session-id":"a""#), Some(("session", "unrecognized"))),
            (j(r#""activity-type":"BRAND_NEW_FAILURE","message":"x""#), Some(("session", "unrecognized"))),
            // Near-misses must not match another cause's rule.
            (j(r#""activity-type":"ERROR","message":"Not Access denied","session-id":"a""#), Some(("session", "unrecognized"))),
            (j(r#""activity-type":"ERROR","message":"Access denied for reasons","session-id":"a""#), Some(("session", "unrecognized"))),
            // workflows
            (r#"{"type":"StepErrored","details":{"errorType":"BAD_REQUEST","errorMessage":"Bad Request","stepType":"COPY","stepName":"copy"},"workflowId":"w-1","executionId":"e-1","transferDetails":{"serverId":"s-0123456789abcdef0","username":"jdoe","sessionId":"a"}}"#.into(), Some(("workflow", "step_failed"))),
            (r#"{"type":"ExecutionErrored","details":{"errorMessage":"Service failure on starting workflow"},"workflowId":"w-1","executionId":"e-1","transferDetails":{"serverId":"0123456789abcdef0","username":"jdoe","sessionId":"a"}}"#.into(), Some(("workflow", "execution_failed"))),
            (r#"{"type":"ExecutionThrottled","details":{},"workflowId":"w-1","executionId":"e-1"}"#.into(), Some(("workflow", "throttled"))),
            (r#"{"type":"ExecutionCompleted","details":{},"workflowId":"w-1","executionId":"e-1"}"#.into(), None),
            // connectors
            (r#"{"operation":"SEND","connector-id":"c-0123456789abcdef0","status-code":"FAILED","failure-code":"TIMEOUT_ERROR","failure-message":"Transfer request timeout."}"#.into(), Some(("connector", "timeout_error"))),
            (r#"{"operation":"RETRIEVE","connector-id":"c-0123456789abcdef0","status-code":"FAILED","failure-code":"CONNECTION_ERROR","failure-message":"Unknown Host"}"#.into(), Some(("connector", "connection_error"))),
            (r#"{"operation":"SEND","connector-id":"c-0123456789abcdef0","status-code":"FAILED","failure-code":"ASSUME_ROLE_ERROR"}"#.into(), Some(("connector", "assume_role_error"))),
            (r#"{"operation":"SEND","connector-id":"c-0123456789abcdef0","status-code":"FAILED","failure-code":"SEND_FILE_NOT_FOUND"}"#.into(), Some(("connector", "send_file_not_found"))),
            (r#"{"operation":"SEND","connector-id":"c-0123456789abcdef0","status-code":"FAILED","failure-code":"CONNECTION_ERROR","failure-message":"Key exchange negotiation failed due to incompatible host key algorithms. Client offered: [ssh-rsa] Server offered: [ssh-ed25519]"}"#.into(), Some(("connector", "host_key_mismatch"))),
            (r#"{"operation":"SEND","connector-id":"c-0123456789abcdef0","status-code":"FAILED","failure-code":"BRAND_NEW_CODE"}"#.into(), Some(("connector", "unrecognized"))),
            (r#"{"operation":"SEND","connector-id":"c-0123456789abcdef0","status-code":"COMPLETED","bytes":10}"#.into(), None),
            (r#"{"type":"ExecutionThrottled","details":{},"connectorId":"c-0123456789abcdef0"}"#.into(), Some(("connector", "throttled"))),
            // AS2: only FAILED is a failure
            (r#"{"as2-message-id":"m","server-id":"s-0123456789abcdef0","agreement-id":"a","status-code":"FAILED","failure-code":"DECRYPT_FAILED"}"#.into(), Some(("as2", "decrypt_failed"))),
            (r#"{"as2-message-id":"m","connector-id":"c-0123456789abcdef0","status-code":"FAILED","failure-code":"MDN_RESPONSE_INDICATES_INTEGRITY_CHECK_FAILED"}"#.into(), Some(("as2", "mdn_response_indicates_integrity_check_failed"))),
            (r#"{"as2-message-id":"m","server-id":"s-1","status-code":"FAILED","failure-code":"SOMETHING_NEW"}"#.into(), Some(("as2", "unrecognized"))),
            (r#"{"as2-message-id":"m","server-id":"s-1","status-code":"PROCESSING"}"#.into(), None),
            (r#"{"as2-message-id":"m","server-id":"s-1","status-code":"MDN_TRANSMIT"}"#.into(), None),
            (r#"{"as2-message-id":"m","server-id":"s-1","status-code":"COMPLETED"}"#.into(), None),
            // non-failures have no cause
            (j(r#""activity-type":"CONNECTED","user":"jdoe","session-id":"a""#), None),
            ("jdoe.0a700c01575303e3 CONNECTED SourceIP=198.51.100.7 User=jdoe HomeDir=/example-bucket/jdoe Client=SSH-2.0-OpenSSH_9.6 Role=arn:aws:iam::111122223333:role/sftp-jdoe".into(), None),
            (j(r#""activity-type":"OPEN","path":"/b/k","mode":"READ","session-id":"a""#), None),
            ("jdoe.0a700c01575303e3 OPEN Path=/example-bucket/jdoe/in/a.csv Mode=CREATE|TRUNCATE|WRITE".into(), None),
            (format!(r#"{{"path":"/example-bucket/jdoe/in/a.csv","activity-type":"CLOSE","resource-arn":"{ARN}","bytes-in":"2048","session-id":"26315c40e111fcf04b00"}}"#), None),
            ("jdoe.0a700c01575303e3 CLOSE Path=/example-bucket/jdoe/in/a.csv BytesIn=2048".into(), None),
            (j(r#""activity-type":"DISCONNECTED","session-id":"a""#), None),
            (j(r#""activity-type":"SETSTAT","path":"/b/k","session-id":"a""#), None),
            (j(r#""activity-type":"MKDIR","path":"/b/k","session-id":"a""#), None),
            (j(r#""activity-type":"SOMETHING_NEW","session-id":"a""#), None),
        ];
        let mut failures = Vec::new();
        for (msg, want) in &cases {
            let got = run(msg);
            if got != *want {
                failures.push(format!("input: {msg}\n  want {want:?}\n   got {got:?}"));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} cases failed:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }

    /// No rule's sample message may match an earlier rule of another cause:
    /// each exact/prefix text, fed to the server table, lands on its own rule.
    #[test]
    fn rules_do_not_overlap() {
        for rule in SERVER_RULES {
            let text = match rule.msg {
                Msg::Exact(t) | Msg::Prefix(t) => t,
                Msg::KeyFingerprint => "RSA SHA256:abc",
                Msg::Any => continue,
            };
            for activity in rule.activities {
                let ev = ServerEvent {
                    activity: Some(activity.clone()),
                    message: Some(text.into()),
                    ..Default::default()
                };
                let got = server(&ev).expect("failure activity");
                assert_eq!(
                    (got.category, got.cause),
                    (rule.category, rule.cause),
                    "message {text:?} under {activity:?}"
                );
            }
        }
    }

    /// Renamed failure codes: the documented old name and the current name
    /// of each rename land on the same cause, named after the current code
    /// (the label never carries the old name).
    #[test]
    fn renamed_failure_codes_are_aliases_of_the_current_cause() {
        // (kind, documented old name, current name, expected cause)
        #[rustfmt::skip]
        let cases: &[(&str, &str, &str, &str)] = &[
            // AWS Transfer Family User Guide, "AS2 error codes", 2023 edition
            // against the current edition.
            ("as2", "ERROR_DECRYPT_UNSUPPORTED_ENCRYPTION_ALG", "DECRYPT_FAILED_UNSUPPORTED_ENCRYPTION_ALG", "decrypt_failed_unsupported_encryption_alg"),
        ];
        let line = |kind: &str, code: &str| match kind {
            "as2" => format!(
                r#"{{"as2-message-id":"m","server-id":"s-1","status-code":"FAILED","failure-code":"{code}"}}"#
            ),
            _ => format!(
                r#"{{"operation":"SEND","connector-id":"c-1","status-code":"FAILED","failure-code":"{code}"}}"#
            ),
        };
        let mut failures = Vec::new();
        for (kind, old, current, cause) in cases {
            for code in [*old, *current, &old.to_ascii_lowercase()] {
                let input = line(kind, code);
                let got = run(&input);
                if got != Some((kind, cause)) {
                    failures.push(format!(
                        "input: {input}\n  want {:?}\n   got {got:?}",
                        (kind, cause)
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));

        // The test table and the alias tables agree, and every alias points
        // at a current code and is not one itself.
        let aliases: Vec<(&str, &str, &str)> = AS2_CODE_ALIASES
            .iter()
            .map(|(o, c)| ("as2", *o, *c))
            .chain(
                CONNECTOR_CODE_ALIASES
                    .iter()
                    .map(|(o, c)| ("connector", *o, *c)),
            )
            .collect();
        assert_eq!(
            aliases,
            cases
                .iter()
                .map(|(k, o, c, _)| (*k, *o, *c))
                .collect::<Vec<_>>(),
            "every alias has a row in this test"
        );
        for (kind, old, current) in aliases {
            let table = if kind == "as2" {
                AS2_CODES
            } else {
                CONNECTOR_CODES
            };
            assert!(
                table.iter().any(|(c, _, _)| *c == current),
                "{current} is a current {kind} code"
            );
            assert!(
                !table.iter().any(|(c, _, _)| *c == old),
                "{old} is not also a current {kind} code"
            );
        }
    }

    #[test]
    fn vocabulary_has_unique_causes_and_advice_everywhere() {
        let v = vocabulary();
        assert!(v.len() > 60, "{}", v.len());
        for c in &v {
            assert!(!c.advice.is_empty(), "{c:?}");
            assert!(
                c.cause.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "cause is a snake_case label value: {c:?}"
            );
        }
    }
}
