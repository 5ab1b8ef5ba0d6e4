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
pub fn parse(message: &str) -> Result<Parsed, ParseError> {
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(ParseError::TooLong);
    }
    let trimmed = message.trim();
    if trimmed.is_empty() {
        return Err(ParseError::Empty);
    }
    if trimmed.starts_with('{') {
        json::parse(trimmed)
    } else {
        legacy::parse(trimmed)
    }
}

/// Splits a Transfer Family ARN (`arn:<partition>:transfer:<region>:<account>:<type>/<id>`)
/// into (region, account, type, id). `None` when it is not one.
pub fn split_arn(arn: &str) -> Option<(&str, &str, &str, &str)> {
    let mut parts = arn.splitn(6, ':');
    if parts.next()? != "arn" {
        return None;
    }
    let _partition = parts.next()?;
    let _service = parts.next()?;
    let region = parts.next()?;
    let account = parts.next()?;
    let resource = parts.next()?;
    let (kind, id) = resource.split_once('/')?;
    // Only the first path segment is the id (user ARNs are server/<id>/<user>).
    let id = id.split('/').next().unwrap_or(id);
    if id.is_empty() {
        return None;
    }
    Some((region, account, kind, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_arn_table() {
        let cases: &[(&str, Option<(&str, &str, &str, &str)>)] = &[
            (
                "arn:aws:transfer:eu-west-1:111122223333:server/s-0123456789abcdef0",
                Some(("eu-west-1", "111122223333", "server", "s-0123456789abcdef0")),
            ),
            (
                "arn:aws-cn:transfer:cn-north-1:111122223333:server/s-01234567890abcdef",
                Some(("cn-north-1", "111122223333", "server", "s-01234567890abcdef")),
            ),
            (
                "arn:aws:transfer:eu-west-1:111122223333:user/s-0123456789abcdef0/jdoe",
                Some(("eu-west-1", "111122223333", "user", "s-0123456789abcdef0")),
            ),
            ("arn:aws:transfer:eu-west-1:111122223333:server/", None),
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
}
