//! JSON messages: structured server events, SFTP connector lines, connector
//! throttling lines, AS2 lines and workflow lines, all read in ONE serde pass
//! into [`Wire`] (a union of the keys we use; unknown keys are skipped
//! without allocating), then told apart by which keys are present
//! (reference §8.1).
//!
//! Values are read leniently: a string field that arrives as a number or
//! bool is kept as text, an object or array where a string was expected is
//! ignored, and byte counts may be numbers or numeric strings (`"121"`).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use super::scan;
use crate::event::{
    Activity, As2Event, ConnectorEvent, Format, ParseError, Parsed, ServerEvent, WorkflowEvent,
};

/// Text field read leniently (see module docs). `None` for null, objects, arrays.
#[derive(Debug, Default)]
struct Text<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                Text::deserialize(d)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
        }
        d.deserialize_any(V)
    }
}

impl Text<'_> {
    fn owned(&self) -> Option<String> {
        self.0.as_deref().map(str::to_owned)
    }
    fn as_str(&self) -> Option<&str> {
        self.0.as_deref()
    }
    fn is_some(&self) -> bool {
        self.0.is_some()
    }
    /// A byte count: a non-negative integer, as a number or a numeric string.
    fn count(&self) -> Option<u64> {
        let s = self.0.as_deref()?.trim();
        s.parse::<u64>().ok().or_else(|| {
            s.parse::<f64>()
                .ok()
                .filter(|f| *f >= 0.0)
                .map(|f| f as u64)
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TransferDetails<'a> {
    #[serde(borrow, rename = "serverId")]
    server_id: Text<'a>,
    #[serde(borrow)]
    username: Text<'a>,
    #[serde(borrow, rename = "sessionId")]
    session_id: Text<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Details<'a> {
    #[serde(borrow, rename = "errorType")]
    error_type: Text<'a>,
    #[serde(borrow, rename = "errorMessage")]
    error_message: Text<'a>,
}

/// Lenient container: an object is read, anything else ignored.
#[derive(Debug, Default)]
struct Obj<T>(Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Buffering is avoided: objects are rare (workflow lines only) and
        // small, so read through serde_json's Value only for them.
        let v = serde_json::Value::deserialize(d)?;
        Ok(Obj(match v {
            serde_json::Value::Object(_) => T::deserialize(v).ok(),
            _ => None,
        }))
    }
}

/// Every key we read, from every JSON format.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Wire<'a> {
    // structured server events
    #[serde(borrow, rename = "activity-type")]
    activity_type: Text<'a>,
    #[serde(borrow, rename = "resource-arn")]
    resource_arn: Text<'a>,
    #[serde(borrow, rename = "session-id")]
    session_id: Text<'a>,
    #[serde(borrow)]
    user: Text<'a>,
    #[serde(borrow, rename = "source-ip")]
    source_ip: Text<'a>,
    #[serde(borrow)]
    method: Text<'a>,
    #[serde(borrow)]
    message: Text<'a>,
    #[serde(borrow)]
    operation: Text<'a>,
    #[serde(borrow)]
    path: Text<'a>,
    #[serde(borrow, rename = "bytes-in")]
    bytes_in: Text<'a>,
    #[serde(borrow, rename = "bytes-out")]
    bytes_out: Text<'a>,
    // connectors
    #[serde(borrow, rename = "connector-id")]
    connector_id: Text<'a>,
    #[serde(borrow, rename = "connectorId")]
    connector_id_camel: Text<'a>,
    #[serde(borrow, rename = "status-code")]
    status_code: Text<'a>,
    #[serde(borrow, rename = "failure-code")]
    failure_code: Text<'a>,
    #[serde(borrow, rename = "failure-message")]
    failure_message: Text<'a>,
    #[serde(borrow)]
    bytes: Text<'a>,
    #[serde(borrow, rename = "account-id")]
    account_id: Text<'a>,
    // AS2
    #[serde(borrow, rename = "as2-message-id")]
    as2_message_id: Text<'a>,
    #[serde(borrow, rename = "server-id")]
    server_id: Text<'a>,
    #[serde(borrow, rename = "transfer-size")]
    transfer_size: Text<'a>,
    // workflows (and the connector throttling line's `type`)
    #[serde(borrow, rename = "type")]
    kind: Text<'a>,
    #[serde(borrow, rename = "workflowId")]
    workflow_id: Text<'a>,
    #[serde(borrow, rename = "executionId")]
    execution_id: Text<'a>,
    #[serde(borrow, rename = "transferDetails")]
    transfer_details: Obj<TransferDetails<'a>>,
    #[serde(borrow)]
    details: Obj<Details<'a>>,
}

/// Parses a message that starts with `{`: the fast scanner reads it when it
/// can vouch for it (nearly always), `serde_json` otherwise; both fill the
/// same [`Wire`], so the result does not depend on which one read it.
pub fn parse(message: &str) -> Result<Parsed<'_>, ParseError> {
    // Filled in place and read by reference: the record is large (≈ 800
    // bytes), and moving it around cost more than reading a message.
    let mut w = Wire::default();
    if fast(message, &mut w).is_none() {
        w = slow(message)?;
    }
    from_wire(&mut w)
}

/// [`parse`] through `serde_json` alone, never the scanner: the reference
/// the benchmarks compare the fast path with (`benches/pipeline.rs`).
pub fn parse_with_serde_only(message: &str) -> Result<Parsed<'_>, ParseError> {
    from_wire(&mut slow(message)?)
}

/// The `serde_json` path: decides validity and reads escapes, floats,
/// nested objects, everything the scanner declines.
fn slow(message: &str) -> Result<Wire<'_>, ParseError> {
    serde_json::from_str(message).map_err(|_| ParseError::InvalidJson)
}

/// The scanner path ([`super::scan`]): `None` when the scanner declines the
/// message, or a key we read appears twice or holds a value whose text
/// `serde_json` would spell differently (a fraction, a sign) or reject (a
/// lone surrogate escape), or is one of
/// the two objects (`transferDetails`, `details`) read through
/// `serde_json`'s `Value`; the slow path then reads it.
/// Fills `w`, which must be empty; on `None` it holds partial values.
fn fast<'a>(message: &'a str, w: &mut Wire<'a>) -> Option<()> {
    // Keys seen, by field: `serde` rejects a duplicate field, so must we.
    let mut seen: u32 = 0;
    super::scan::object(message, |key, value| {
        // By length first: most keys of a message are ones we skip, and
        // this rejects them with one or two comparisons.
        let (bit, field) = match (key.len(), key) {
            (4, "user") => (3, &mut w.user),
            (4, "path") => (8, &mut w.path),
            (4, "type") => (21, &mut w.kind),
            (5, "bytes") => (16, &mut w.bytes),
            (6, "method") => (5, &mut w.method),
            (7, "message") => (6, &mut w.message),
            (8, "bytes-in") => (9, &mut w.bytes_in),
            (9, "source-ip") => (4, &mut w.source_ip),
            (9, "operation") => (7, &mut w.operation),
            (9, "bytes-out") => (10, &mut w.bytes_out),
            (9, "server-id") => (19, &mut w.server_id),
            (10, "session-id") => (2, &mut w.session_id),
            (10, "account-id") => (17, &mut w.account_id),
            (10, "workflowId") => (22, &mut w.workflow_id),
            (11, "connectorId") => (12, &mut w.connector_id_camel),
            (11, "status-code") => (13, &mut w.status_code),
            (11, "executionId") => (23, &mut w.execution_id),
            (12, "resource-arn") => (1, &mut w.resource_arn),
            (12, "connector-id") => (11, &mut w.connector_id),
            (12, "failure-code") => (14, &mut w.failure_code),
            (13, "activity-type") => (0, &mut w.activity_type),
            (13, "transfer-size") => (20, &mut w.transfer_size),
            (14, "as2-message-id") => (18, &mut w.as2_message_id),
            (15, "failure-message") => (15, &mut w.failure_message),
            (7, "details") | (15, "transferDetails") => return false,
            _ => return true,
        };
        if seen & (1 << bit) != 0 {
            return false;
        }
        seen |= 1 << bit;
        // What `Text`'s visitor makes of each: the integer and the literal
        // print back as written, so they are borrowed like strings.
        field.0 = match value {
            scan::Value::Str(s) | scan::Value::Int(s) | scan::Value::Bool(s) => {
                Some(Cow::Borrowed(s))
            }
            scan::Value::Escaped(raw) => {
                let mut text = String::with_capacity(raw.len());
                if scan::unescape(raw, &mut text).is_none() {
                    return false;
                }
                Some(Cow::Owned(text))
            }
            scan::Value::Null | scan::Value::Nested(_) => None,
            scan::Value::OtherNumber => return false,
        };
        true
    })
}

fn from_wire<'a>(w: &mut Wire<'a>) -> Result<Parsed<'a>, ParseError> {
    if let Some(activity) = w.activity_type.as_str() {
        let activity = Activity::from_wire(activity);
        return Ok(Parsed::Server {
            format: Format::Structured,
            event: server(w, activity),
        });
    }
    if w.as2_message_id.is_some() {
        return Ok(Parsed::As2(As2Event {
            server_id: w.server_id.owned(),
            connector_id: w.connector_id.owned(),
            status_code: w.status_code.owned(),
            failure_code: w.failure_code.owned(),
            failure_message: w.failure_message.owned(),
            bytes: w.transfer_size.count().or_else(|| w.bytes.count()),
        }));
    }
    if w.connector_id.is_some() && (w.operation.is_some() || w.status_code.is_some()) {
        return Ok(Parsed::Connector(ConnectorEvent {
            connector_id: w.connector_id.owned(),
            operation: w.operation.owned(),
            status_code: w.status_code.owned(),
            failure_code: w.failure_code.owned(),
            failure_message: w.failure_message.owned(),
            bytes: w.bytes.count(),
            account_id: w.account_id.owned(),
        }));
    }
    if w.connector_id_camel.is_some() {
        return Ok(Parsed::ConnectorThrottled {
            connector_id: w.connector_id_camel.owned(),
        });
    }
    if w.workflow_id.is_some() && w.kind.is_some() {
        let td = w.transfer_details.0.take().unwrap_or_default();
        let details = w.details.0.take().unwrap_or_default();
        return Ok(Parsed::Workflow(WorkflowEvent {
            kind: w.kind.owned().unwrap_or_default(),
            workflow_id: w.workflow_id.owned(),
            execution_id: w.execution_id.owned(),
            server_id: td.server_id.as_str().map(normalize_server_id),
            user: td.username.owned(),
            session_id: td.session_id.owned(),
            error_type: details.error_type.owned(),
            error_message: details.error_message.owned(),
        }));
    }
    Err(ParseError::UnknownJson)
}

/// Moves the fields out of the wire record: borrowed text stays borrowed.
fn server<'a>(w: &mut Wire<'a>, activity: Activity) -> ServerEvent<'a> {
    let (region, account_id, server_id) = match w.resource_arn.0.take() {
        Some(Cow::Borrowed(arn)) => match super::split_arn(arn) {
            Some((region, account, _kind, id)) => (
                Some(Cow::Borrowed(region)),
                Some(Cow::Borrowed(account)),
                Some(Cow::Borrowed(id)),
            ),
            None => (None, None, None),
        },
        // An ARN with JSON escapes in it (never seen; still handled).
        Some(Cow::Owned(arn)) => match super::split_arn(&arn) {
            Some((region, account, _kind, id)) => (
                Some(Cow::Owned(region.to_owned())),
                Some(Cow::Owned(account.to_owned())),
                Some(Cow::Owned(id.to_owned())),
            ),
            None => (None, None, None),
        },
        None => (None, None, None),
    };
    ServerEvent {
        activity: Some(activity),
        server_id,
        region,
        account_id,
        bytes_in: w.bytes_in.count(),
        bytes_out: w.bytes_out.count(),
        user: w.user.0.take(),
        session_id: w.session_id.0.take(),
        message: w.message.0.take(),
        method: w.method.0.take(),
        operation: w.operation.0.take(),
        path: w.path.0.take(),
        source_ip: w.source_ip.0.take(),
        stream_token: None,
    }
}

/// One documented workflow sample omits the `s-` of `serverId`: a bare
/// 17-hex-digit id gets it back so both spellings count as one server.
fn normalize_server_id(id: &str) -> String {
    if id.len() == 17 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("s-{id}")
    } else {
        id.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Both paths agree wherever the fast one answers: the same `Parsed`.
    fn agree(message: &str) -> Result<bool, String> {
        let mut fast_wire = Wire::default();
        if fast(message, &mut fast_wire).is_none() {
            return Ok(false);
        }
        let mut slow = slow(message)
            .map_err(|_| format!("scanner accepted what serde_json rejects: {message}"))?;
        let (fast, slow) = (from_wire(&mut fast_wire), from_wire(&mut slow));
        if fast != slow {
            return Err(format!(
                "paths differ on {message}\nfast: {fast:?}\nslow: {slow:?}"
            ));
        }
        Ok(true)
    }

    /// The benchmark corpus and the reference's verbatim events: the fast
    /// path reads nearly all of them, and reads them as serde_json does.
    #[test]
    fn fast_path_matches_serde_on_the_corpus_and_the_fixtures() {
        let fixtures = include_str!("../../tests/data/sample.jsonl");
        let mut messages: Vec<String> = fixtures
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v.get("message")?.as_str().map(str::to_owned))
            .collect();
        assert!(messages.len() > 10, "fixtures read");
        messages.extend(
            crate::corpus::mixed(5_000, 7)
                .into_iter()
                .map(|e| e.message),
        );
        let (mut json, mut fast_hits) = (0, 0);
        for m in &messages {
            let m = m.trim();
            if !m.starts_with('{') {
                continue;
            }
            json += 1;
            fast_hits += usize::from(agree(m).unwrap_or_else(|e| panic!("{e}")));
        }
        assert!(
            fast_hits * 10 >= json * 9,
            "{fast_hits} of {json} on the fast path"
        );
    }

    #[test]
    fn fast_path_declines_what_it_would_read_differently() {
        let cases = [
            // floats, signs and lone surrogates are the slow path's
            r#"{"activity-type":"ERROR","message":"Access \ud800enied"}"#,
            r#"{"activity-type":"CLOSE","bytes-in":12.0}"#,
            r#"{"activity-type":"CLOSE","bytes-in":-5}"#,
            r#"{"activity-type":"CLOSE","bytes-in":1e400}"#,
            // duplicate fields are an error to serde
            r#"{"activity-type":"CLOSE","activity-type":"OPEN"}"#,
            r#"{"user":null,"activity-type":"CLOSE","user":"x"}"#,
            // objects read through Value
            r#"{"type":"StepErrored","workflowId":"w-1","transferDetails":{"serverId":"0123456789abcdef0"}}"#,
        ];
        for m in cases {
            assert!(fast(m, &mut Wire::default()).is_none(), "{m}");
        }
        // Unknown keys may repeat, as for serde.
        assert!(agree(r#"{"x":1,"x":2,"activity-type":"OPEN"}"#).unwrap());
        assert!(agree(r#"{"user":{"a":[1,2]},"activity-type":"OPEN","message":[true]}"#).unwrap());
        assert!(
            agree(r#"{"activity-type":"ERROR","message":"Access \u0064enied \"x\""}"#).unwrap()
        );
        assert!(agree(
            r#"{"user":12345,"activity-type":"OPEN","bytes-out":29238420042,"message":false}"#
        )
        .unwrap());
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            any::<String>().prop_map(serde_json::Value::from),
            "[a-zA-Z0-9 :/._-]{0,12}".prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(|f| serde_json::json!(f)),
            any::<bool>().prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-z]{1,3}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    const KEYS: &[&str] = &[
        "activity-type",
        "resource-arn",
        "session-id",
        "user",
        "source-ip",
        "method",
        "message",
        "operation",
        "path",
        "bytes-in",
        "bytes-out",
        "connector-id",
        "connectorId",
        "status-code",
        "failure-code",
        "failure-message",
        "bytes",
        "account-id",
        "as2-message-id",
        "server-id",
        "transfer-size",
        "type",
        "workflowId",
        "executionId",
        "transferDetails",
        "details",
        "x",
    ];

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(2000),
            .. ProptestConfig::default()
        })]

        /// Objects of the keys we read (repeats allowed) with any values,
        /// written compactly or with odd whitespace: the paths agree.
        #[test]
        fn arbitrary_objects_read_the_same_on_both_paths(
            fields in proptest::collection::vec((prop::sample::select(KEYS), json_value()), 0..8),
            pretty in any::<bool>(),
        ) {
            let body: Vec<String> = fields
                .iter()
                .map(|(k, v)| {
                    let v = if pretty { serde_json::to_string_pretty(v) } else { serde_json::to_string(v) };
                    format!("{}:{}", serde_json::to_string(k).unwrap(), v.unwrap())
                })
                .collect();
            let sep = if pretty { " ,\n\t" } else { "," };
            let m = format!("{{{}}}", body.join(sep));
            agree(&m).map_err(TestCaseError::fail)?;
        }

        /// Random edits of a real message (cut, byte replaced, text
        /// inserted): whatever the scanner accepts, serde_json reads the same.
        #[test]
        fn mangled_messages_read_the_same_on_both_paths(
            which in 0usize..200,
            cut in any::<prop::sample::Index>(),
            insert in prop_oneof![Just(String::new()), "[{}\\[\\],:\"\\\\ 0-9a-z.eE+-]{1,4}"],
            replace in any::<bool>(),
        ) {
            let events = crate::corpus::mixed(200, 3);
            let m = &events[which].message;
            let at = cut.index(m.len() + 1);
            if !m.is_char_boundary(at) { return Ok(()); }
            let mut s = m[..at].to_owned();
            s.push_str(&insert);
            let rest = &m[at..];
            let skip = if replace { rest.chars().next().map_or(0, char::len_utf8) } else { 0 };
            s.push_str(&rest[skip..]);
            let s = s.trim();
            if s.starts_with('{') {
                agree(s).map_err(TestCaseError::fail)?;
            }
        }
    }
}
