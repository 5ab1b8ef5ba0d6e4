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

/// Parses a message that starts with `{`.
pub fn parse(message: &str) -> Result<Parsed<'_>, ParseError> {
    let w: Wire = serde_json::from_str(message).map_err(|_| ParseError::InvalidJson)?;
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
        let td = w.transfer_details.0.unwrap_or_default();
        let details = w.details.0.unwrap_or_default();
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
fn server(w: Wire<'_>, activity: Activity) -> ServerEvent<'_> {
    let (region, account_id, server_id) = match w.resource_arn.0 {
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
        user: w.user.0,
        session_id: w.session_id.0,
        message: w.message.0,
        method: w.method.0,
        operation: w.operation.0,
        path: w.path.0,
        source_ip: w.source_ip.0,
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
