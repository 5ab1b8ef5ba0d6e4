//! The wire shapes: the Firehose HTTP endpoint delivery request and answer
//! (protocol 1.0), and the CloudWatch Logs subscription payload each record
//! carries. Unknown fields are ignored everywhere: AWS adds fields, and a
//! receiver that rejects them would stop counting on the day it does.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// Header names Firehose sends (lower case, as hyper stores them).
pub mod headers {
    pub const REQUEST_ID: &str = "x-amz-firehose-request-id";
    pub const ACCESS_KEY: &str = "x-amz-firehose-access-key";
    pub const PROTOCOL_VERSION: &str = "x-amz-firehose-protocol-version";
    pub const SOURCE_ARN: &str = "x-amz-firehose-source-arn";
}

/// The delivery request body. Record data is borrowed from the body buffer
/// when it needs no unescaping (always, for base64), so parsing a 64 MiB
/// body copies no record.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseRequest<'a> {
    #[serde(borrow)]
    pub request_id: Cow<'a, str>,
    /// Milliseconds since the epoch when Firehose sent the request. Only
    /// informative: events keep their own timestamps.
    #[serde(default)]
    pub timestamp: Option<i64>,
    #[serde(borrow)]
    pub records: Vec<FirehoseRecord<'a>>,
}

/// One record: base64 of what the producer put (here: a gzipped CloudWatch
/// Logs subscription message). May be empty.
#[derive(Debug, Deserialize)]
pub struct FirehoseRecord<'a> {
    #[serde(borrow, default)]
    pub data: Cow<'a, str>,
}

/// The answer Firehose expects: the request's id, now in milliseconds, and
/// an optional error message (at most 8,192 characters).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseResponse {
    pub request_id: String,
    pub timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_message: Option<String>,
}

/// Firehose rejects an `errorMessage` longer than this (the whole answer
/// then counts as a failure).
pub const MAX_ERROR_MESSAGE_CHARS: usize = 8192;

/// `messageType` of a subscription message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// Log events.
    Data,
    /// A reachability check from CloudWatch Logs: no events.
    Control,
    /// Anything else (a future type): counted as undecodable.
    Other,
}

impl<'de> Deserialize<'de> for MessageType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s: Cow<'de, str> = Deserialize::deserialize(d)?;
        Ok(match s.as_ref() {
            "DATA_MESSAGE" => MessageType::Data,
            "CONTROL_MESSAGE" => MessageType::Control,
            _ => MessageType::Other,
        })
    }
}

/// A CloudWatch Logs subscription message (the JSON inside each record).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogsMessage {
    pub message_type: MessageType,
    #[serde(default)]
    pub log_group: String,
    #[serde(default)]
    pub log_stream: String,
    #[serde(default)]
    pub log_events: Vec<LogEvent>,
}

/// One log event of a subscription message.
#[derive(Debug, Deserialize)]
pub struct LogEvent {
    /// A 56-digit string on AWS, a number in moto: kept as an opaque string.
    #[serde(deserialize_with = "id_string_or_number")]
    pub id: String,
    /// The event's own time (ms since the epoch): never the request's.
    pub timestamp: i64,
    pub message: String,
}

fn id_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an event id (string or integer)")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_id_is_a_string_or_a_number() {
        let cases = [
            (
                r#"{"id":"36914210591845216345678","timestamp":1,"message":"m"}"#,
                "36914210591845216345678",
            ),
            (r#"{"id":17,"timestamp":1,"message":"m"}"#, "17"),
        ];
        for (input, want) in cases {
            let e: LogEvent =
                serde_json::from_str(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(e.id, want, "{input}");
        }
        assert!(
            serde_json::from_str::<LogEvent>(r#"{"id":1.5,"timestamp":1,"message":"m"}"#).is_err()
        );
    }

    #[test]
    fn message_types() {
        for (t, want) in [
            ("DATA_MESSAGE", MessageType::Data),
            ("CONTROL_MESSAGE", MessageType::Control),
            ("SOMETHING_NEW", MessageType::Other),
        ] {
            let m: LogsMessage =
                serde_json::from_str(&format!(r#"{{"messageType":"{t}","extra":[1]}}"#)).unwrap();
            assert_eq!(m.message_type, want, "{t}");
        }
    }

    #[test]
    fn response_shape() {
        let r = FirehoseResponse {
            request_id: "abc".into(),
            timestamp: 1_700_000_000_123,
            error_message: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"requestId":"abc","timestamp":1700000000123}"#
        );
    }
}
