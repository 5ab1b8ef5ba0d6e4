//! Parsing: one raw CloudWatch message to a typed [`Parsed`] event.
//!
//! Pure and total: every input, however broken, yields `Ok` or a bounded
//! [`ParseError`]; nothing panics (a proptest and a fuzz-style test hold us
//! to that). The format is detected per event, never per group, because one
//! log group can mix structured JSON, legacy text, connector, AS2 and
//! workflow lines (reference §1.1, §8.1):
//!
//! - a message starting with `{` is JSON, told apart by its keys
//!   ([`json`]);
//! - anything else is tried as a legacy logging-role text line ([`legacy`]).

pub mod json;
pub mod legacy;
pub mod scan;

use crate::event::{ParseError, Parsed};

/// Messages longer than this are not parsed (counted as `too_long`).
/// CloudWatch Logs caps one event at 1 MiB, so nothing real is larger; the
/// cap keeps a hostile or corrupted input from costing unbounded time.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Which family a message looked like before parsing: the `format` label of
/// `aws_transfer_exporter_unparsed_events_total`.
pub fn family(message: &str) -> &'static str {
    if message.trim_start().starts_with('{') {
        "json"
    } else {
        "text"
    }
}

/// Parses one message. See the module docs for detection.
pub fn parse(message: &str) -> Result<Parsed<'_>, ParseError> {
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(ParseError::TooLong);
    }
    let trimmed = trim(message);
    if trimmed.is_empty() {
        return Err(ParseError::Empty);
    }
    if trimmed.starts_with('{') {
        json::parse(trimmed)
    } else {
        legacy::parse(trimmed)
    }
}

/// `s.trim()`, answering without a scan when both ends are visible ASCII
/// (nearly every message: `{…}` or a text line): such a byte is a whole
/// character and not whitespace, so there is nothing to trim.
fn trim(s: &str) -> &str {
    match s.as_bytes() {
        [first, .., last] if first.is_ascii_graphic() && last.is_ascii_graphic() => s,
        _ => s.trim(),
    }
}

pub use crate::bytes::find_byte;

/// Splits a Transfer Family ARN (`arn:<partition>:transfer:<region>:<account>:<type>/<id>`)
/// into (region, account, type, id). `None` when it is not one.
pub fn split_arn(arn: &str) -> Option<(&str, &str, &str, &str)> {
    // A register-wide search instead of `splitn`: this runs on every
    // structured event. Every split is at an ASCII byte, so every slice
    // is at a char boundary.
    let rest = arn.strip_prefix("arn:")?;
    let mut fields = [""; 4];
    let mut rest = rest;
    for f in &mut fields {
        let i = find_byte(rest.as_bytes(), b':')?;
        *f = &rest[..i];
        rest = &rest[i + 1..];
    }
    let [_partition, _service, region, account] = fields;
    let slash = find_byte(rest.as_bytes(), b'/')?;
    let kind = &rest[..slash];
    let tail = &rest[slash + 1..];
    // Only the first path segment is the id (user ARNs are server/<id>/<user>).
    let id = match find_byte(tail.as_bytes(), b'/') {
        Some(j) => &tail[..j],
        None => tail,
    };
    if id.is_empty() {
        return None;
    }
    Some((region, account, kind, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_is_str_trim() {
        for s in [
            "",
            " ",
            "x",
            " x",
            "x ",
            "{}",
            " {} ",
            "\t{\"a\":1}\n",
            "a b",
            "\u{a0}x",
            "x\u{a0}",
            "\u{2003}{}\u{3000}",
            "é",
            " é ",
            "\u{85}x\u{85}",
            "{\r\n",
        ] {
            assert_eq!(trim(s), s.trim(), "{s:?}");
        }
    }

    #[test]
    fn split_arn_table() {
        type Parts<'a> = Option<(&'a str, &'a str, &'a str, &'a str)>;
        let cases: &[(&str, Parts)] = &[
            (
                "arn:aws:transfer:eu-west-1:111122223333:server/s-0123456789abcdef0",
                Some(("eu-west-1", "111122223333", "server", "s-0123456789abcdef0")),
            ),
            (
                "arn:aws-cn:transfer:cn-north-1:111122223333:server/s-01234567890abcdef",
                Some((
                    "cn-north-1",
                    "111122223333",
                    "server",
                    "s-01234567890abcdef",
                )),
            ),
            (
                "arn:aws:transfer:eu-west-1:111122223333:user/s-0123456789abcdef0/jdoe",
                Some(("eu-west-1", "111122223333", "user", "s-0123456789abcdef0")),
            ),
            ("arn:aws:transfer:eu-west-1:111122223333:server/", None),
            ("arn:aws:transfer:eu-west-1:111122223333:server", None),
            (
                "arn:aws:transfer:eu-west-1:111122223333:a:b/c",
                Some(("eu-west-1", "111122223333", "a:b", "c")),
            ),
            (
                "arn:a/b:transfer:r:1:server/s-1",
                Some(("r", "1", "server", "s-1")),
            ),
            (
                "arn:é:transfer:ré:1:sérver/s-ü/x",
                Some(("ré", "1", "sérver", "s-ü")),
            ),
            ("not an arn", None),
            ("arn:aws:transfer", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(split_arn(input), *want, "input: {input:?}");
        }
    }

    #[test]
    fn empty_and_huge_messages_are_bounded_errors() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse("  \n\t"), Err(ParseError::Empty));
        let huge = "x".repeat(MAX_MESSAGE_BYTES + 1);
        assert_eq!(parse(&huge), Err(ParseError::TooLong));
    }

    use crate::event::{Activity, Format, Parsed};

    fn server(msg: &str) -> crate::event::ServerEvent<'_> {
        match parse(msg) {
            Ok(Parsed::Server { event, .. }) => event,
            other => panic!("not a server event: {other:?} for {msg}"),
        }
    }

    #[test]
    fn numbers_may_arrive_as_strings_or_numbers() {
        let cases: &[(&str, Option<u64>, Option<u64>)] = &[
            (
                r#"{"activity-type":"CLOSE","bytes-in":"121"}"#,
                Some(121),
                None,
            ),
            (
                r#"{"activity-type":"CLOSE","bytes-out":29238420042}"#,
                None,
                Some(29_238_420_042),
            ),
            (
                r#"{"activity-type":"CLOSE","bytes-in":" 7 "}"#,
                Some(7),
                None,
            ),
            (
                r#"{"activity-type":"CLOSE","bytes-in":12.0}"#,
                Some(12),
                None,
            ),
            (r#"{"activity-type":"CLOSE","bytes-in":"-5"}"#, None, None),
            (r#"{"activity-type":"CLOSE","bytes-in":"lots"}"#, None, None),
            (r#"{"activity-type":"CLOSE","bytes-in":null}"#, None, None),
            (
                "jdoe.0a700c01575303e3 CLOSE Path=/b/k BytesIn=2048",
                Some(2048),
                None,
            ),
            (
                "jdoe.0a700c01575303e3 CLOSE Path=/b/k BytesOut=99",
                None,
                Some(99),
            ),
        ];
        for (msg, bytes_in, bytes_out) in cases {
            let ev = server(msg);
            assert_eq!(
                (ev.bytes_in, ev.bytes_out),
                (*bytes_in, *bytes_out),
                "input: {msg}"
            );
        }
    }

    #[test]
    fn format_detection_table() {
        let cases: &[(&str, Result<Format, ParseError>)] = &[
            (r#"{"activity-type":"CONNECTED"}"#, Ok(Format::Structured)),
            ("ERRORS AUTH_FAILURE User=x", Ok(Format::Legacy)),
            ("ERROR Message=\"Access denied\"", Ok(Format::Legacy)),
            (
                r#"{"connector-id":"c-1","operation":"SEND","status-code":"COMPLETED"}"#,
                Ok(Format::Connector),
            ),
            (
                r#"{"type":"ExecutionThrottled","details":{},"connectorId":"c-1"}"#,
                Ok(Format::ConnectorThrottle),
            ),
            (
                r#"{"as2-message-id":"m","connector-id":"c-1","status-code":"FAILED"}"#,
                Ok(Format::As2),
            ),
            (
                r#"{"type":"StepStarted","workflowId":"w-1"}"#,
                Ok(Format::Workflow),
            ),
            (r#"{"hello":"world"}"#, Err(ParseError::UnknownJson)),
            (
                r#"{"activity-type":"CONNECTED""#,
                Err(ParseError::InvalidJson),
            ),
            (
                r#"{"operation":"SEND","connector-id":"c-1" "status-code":"COMPLETED"}"#,
                Err(ParseError::InvalidJson),
            ),
            ("{", Err(ParseError::InvalidJson)),
            (
                "START RequestId: 8f5 Version: $LATEST",
                Err(ParseError::UnknownText),
            ),
            ("hello world", Err(ParseError::UnknownText)),
            (
                "2025-01-01 something happened",
                Err(ParseError::UnknownText),
            ),
        ];
        for (msg, want) in cases {
            assert_eq!(parse(msg).map(|p| p.format()), *want, "input: {msg}");
        }
    }

    #[test]
    fn unknown_activities_and_fields_are_kept() {
        let ev =
            server(r#"{"activity-type":"QUANTUM_TELEPORT","new-field":{"a":[1,2]},"user":"jdoe"}"#);
        assert_eq!(
            ev.activity,
            Some(Activity::Other("QUANTUM_TELEPORT".into()))
        );
        assert_eq!(ev.user.as_deref(), Some("jdoe"));
        let ev = server("jdoe.0a700c01575303e3 QUANTUM_TELEPORT Foo=bar Baz=\"q u x\"");
        assert_eq!(
            ev.activity,
            Some(Activity::Other("QUANTUM_TELEPORT".into()))
        );
    }

    #[test]
    fn odd_value_types_are_tolerated() {
        // A number where a string is expected is kept as text; an object is ignored.
        let ev = server(
            r#"{"activity-type":"AUTH_FAILURE","user":12345,"message":{"nested":true},"source-ip":"999.1.1.1"}"#,
        );
        assert_eq!(ev.user.as_deref(), Some("12345"));
        assert_eq!(ev.message, None);
        assert_eq!(
            ev.source_ip.as_deref(),
            Some("999.1.1.1"),
            "impossible IPs are not validated"
        );
        // Escaped strings are unescaped.
        let ev = server(r#"{"activity-type":"ERROR","message":"Access \u0064enied"}"#);
        assert_eq!(ev.message.as_deref(), Some("Access denied"));
    }

    #[test]
    fn legacy_quoting_and_stream_tokens() {
        let ev = server(
            r#"ERRORS AUTH_FAILURE Method=publickey User=no-such-user Message="The user is unrecognized" SourceIP=203.0.113.50"#,
        );
        assert_eq!(ev.stream_token.as_deref(), Some("ERRORS"));
        assert_eq!(ev.message.as_deref(), Some("The user is unrecognized"));
        assert_eq!(ev.user.as_deref(), Some("no-such-user"));
        let ev = server(r#"ERROR Message="Access denied" Operation=CLOSE"#);
        assert_eq!(ev.stream_token, None);
        assert_eq!(ev.activity, Some(Activity::Error));
        let ev = server(r#"first.last.0a700c01575303e3 ERROR Message="say \"hi\"" Path=/b/k"#);
        assert_eq!(
            ev.stream_token.as_deref(),
            Some("first.last.0a700c01575303e3")
        );
        assert_eq!(ev.message.as_deref(), Some("say \"hi\""));
        assert_eq!(ev.path.as_deref(), Some("/b/k"));
        // An unterminated quote runs to the end of the line.
        let ev = server(r#"ERROR Message="Access denied"#);
        assert_eq!(ev.message.as_deref(), Some("Access denied"));
    }

    #[test]
    fn structured_identity_from_arn() {
        let ev = server(
            r#"{"activity-type":"CONNECTED","resource-arn":"arn:aws:transfer:eu-west-1:111122223333:server/s-0123456789abcdef0","user":"jdoe","session-id":"26315c40e111fcf04b00"}"#,
        );
        assert_eq!(ev.server_id.as_deref(), Some("s-0123456789abcdef0"));
        assert_eq!(ev.region.as_deref(), Some("eu-west-1"));
        assert_eq!(ev.account_id.as_deref(), Some("111122223333"));
        assert_eq!(ev.session_id.as_deref(), Some("26315c40e111fcf04b00"));
        // Text without escapes is borrowed from the message, not copied.
        for field in [&ev.server_id, &ev.region, &ev.user, &ev.session_id] {
            assert!(
                matches!(field, Some(std::borrow::Cow::Borrowed(_))),
                "{field:?}"
            );
        }
        // An ARN with a JSON escape (`\/`) still yields the same identity.
        let ev = server(
            r#"{"activity-type":"ERROR","resource-arn":"arn:aws:transfer:eu-west-1:111122223333:server\/s-0123456789abcdef0","message":"Access \u0064enied"}"#,
        );
        assert_eq!(ev.server_id.as_deref(), Some("s-0123456789abcdef0"));
        assert_eq!(ev.region.as_deref(), Some("eu-west-1"));
        assert_eq!(ev.account_id.as_deref(), Some("111122223333"));
        assert_eq!(ev.message.as_deref(), Some("Access denied"));
    }

    #[test]
    fn workflow_server_id_without_prefix_is_normalized() {
        let p = parse(r#"{"type":"StepErrored","workflowId":"w-1","transferDetails":{"serverId":"0123456789abcdef0","username":"jdoe"}}"#).unwrap();
        match p {
            Parsed::Workflow(w) => {
                assert_eq!(w.server_id.as_deref(), Some("s-0123456789abcdef0"));
                assert_eq!(w.user.as_deref(), Some("jdoe"));
            }
            other => panic!("{other:?}"),
        }
    }
}
