//! Attribution: which server and which user an event belongs to
//! (reference §8.2).
//!
//! - **Server:** `resource-arn` (already parsed into the event); else a log
//!   group named `/aws/transfer/<id>` (legacy lines, which carry no ARN).
//! - **User:** the event's own `user` field (CONNECTED, AUTH_FAILURE); else a
//!   `session-id → user` map fed by CONNECTED events; else the stream name:
//!   `<server-id>/<user>` (structured per-user streams, observed) or
//!   `<user>.<session-id>` (legacy streams, split at the *last* dot because
//!   user names may contain dots).
//!
//! The session map is an LRU with a TTL measured in *event* time, so that
//! replaying an old dump with `classify` behaves like the live daemon did.
//! Both bounds are config (`attribution.*`).

use std::borrow::Cow;
use std::num::NonZeroUsize;
use std::time::Duration;

use lru::LruCache;

use crate::event::{Activity, RawEvent, ServerEvent};

pub use crate::config::defaults::DEFAULT_SESSION_CACHE_SIZE;

pub use crate::config::defaults::DEFAULT_SESSION_TTL;

/// Where an event's user came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSource {
    /// The event's own `user` / `User` field.
    Field,
    /// The session-id → user map (fed by an earlier CONNECTED).
    Session,
    /// The log stream name.
    Stream,
    /// Nowhere.
    None,
}

/// Who an event belongs to. Borrows from the event and its message where it
/// can: attribution runs on every event and allocates only for a user found
/// through the session map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution<'a> {
    pub server_id: Option<Cow<'a, str>>,
    pub user: Option<Cow<'a, str>>,
    pub source: UserSource,
}

pub struct Attributor {
    sessions: LruCache<Short, (Short, i64)>,
    ttl_ms: i64,
}

impl Attributor {
    pub fn new(cache_size: usize, ttl: Duration) -> Attributor {
        Attributor {
            sessions: LruCache::new(NonZeroUsize::new(cache_size.max(1)).expect("max(1) > 0")),
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// Sessions currently remembered.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Attributes a server event; remembers the session of a CONNECTED.
    pub fn attribute<'a>(&mut self, ev: &ServerEvent<'a>, raw: &'a RawEvent) -> Attribution<'a> {
        let server_id = ev
            .server_id
            .clone()
            .or_else(|| server_from_group(&raw.log_group).map(Cow::Borrowed));
        let stream = if raw.log_stream.is_empty() {
            ev.stream_token.clone().unwrap_or_default()
        } else {
            Cow::Borrowed(raw.log_stream.as_str())
        };

        if let Some(user) = ev.user.as_ref().filter(|u| !u.is_empty()) {
            if ev.activity == Some(Activity::Connected) {
                if let Some(sid) = ev.session_id.as_deref().filter(|s| !s.is_empty()) {
                    self.sessions
                        .put(Short::new(sid), (Short::new(user), raw.timestamp_ms));
                }
            }
            return Attribution {
                server_id,
                user: Some(user.clone()),
                source: UserSource::Field,
            };
        }
        if let Some(sid) = ev.session_id.as_deref() {
            // Usually the stream names the same user: borrow it from there
            // rather than copy it out of the map.
            let user = self.session_user(sid, raw.timestamp_ms, |user| match &stream {
                Cow::Borrowed(s) => match user_from_stream(s) {
                    Some(named) if named == user => Cow::Borrowed(named),
                    _ => Cow::Owned(user.to_owned()),
                },
                Cow::Owned(_) => Cow::Owned(user.to_owned()),
            });
            if let Some(user) = user {
                return Attribution {
                    server_id,
                    user: Some(user),
                    source: UserSource::Session,
                };
            }
        }
        let user = match stream {
            Cow::Borrowed(s) => user_from_stream(s).map(Cow::Borrowed),
            Cow::Owned(s) => user_from_stream(&s).map(|u| Cow::Owned(u.to_owned())),
        };
        let source = if user.is_some() {
            UserSource::Stream
        } else {
            UserSource::None
        };
        Attribution {
            server_id,
            user,
            source,
        }
    }

    /// `f` of the user of session `sid` if it is remembered and not expired
    /// at `now_ms` (one map probe on a hit, which also keeps the session
    /// alive).
    fn session_user<R>(&mut self, sid: &str, now_ms: i64, f: impl FnOnce(&str) -> R) -> Option<R> {
        let (user, seen) = self.sessions.get_mut(sid)?;
        if now_ms.saturating_sub(*seen) > self.ttl_ms {
            self.sessions.pop(sid);
            return None;
        }
        // Activity keeps a session alive: the TTL counts from the last event.
        *seen = (*seen).max(now_ms);
        Some(f(user.as_str()))
    }
}

/// A session id or user name in the session map, kept inline when short
/// (session ids are 20 characters): a CONNECTED then allocates nothing
/// for its entry, and evicting the oldest entry touches the entry only,
/// not two strings elsewhere on the heap.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Short {
    /// The first `len` bytes are the text; the rest are zero, so equal
    /// texts are equal values.
    Inline {
        len: u8,
        bytes: [u8; SHORT_BYTES],
    },
    Heap(Box<str>),
}

/// Longest text kept inline.
const SHORT_BYTES: usize = 32;

impl Short {
    fn new(s: &str) -> Short {
        if s.len() <= SHORT_BYTES {
            let mut bytes = [0; SHORT_BYTES];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Short::Inline {
                len: s.len() as u8,
                bytes,
            }
        } else {
            Short::Heap(s.into())
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Short::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).expect("copied from a str")
            }
            Short::Heap(s) => s,
        }
    }
}

/// Hashes as the text does, so the map is probed with a `&str`.
impl std::hash::Hash for Short {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl std::borrow::Borrow<str> for Short {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

/// `/aws/transfer/<id>` → `<id>` (the logging-role group of a server or
/// connector). Any other group says nothing about the server.
pub fn server_from_group(group: &str) -> Option<&str> {
    let id = group.strip_prefix("/aws/transfer/")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// User from a stream name, or `None` for `ERRORS` and unknown shapes.
pub fn user_from_stream(stream: &str) -> Option<&str> {
    if stream.is_empty() || stream == "ERRORS" {
        return None;
    }
    // Structured per-user stream `<server-id>/<user>`: server ids hold no
    // `/`, so split at the first one. Workflow streams `<workflow-id>/<execution-id>`
    // start with `w-` and carry no user.
    if let Some(slash) = crate::bytes::find_byte(stream.as_bytes(), b'/') {
        // `/` is ASCII: both sides are at char boundaries.
        let (server, user) = (&stream[..slash], &stream[slash + 1..]);
        return (server.starts_with("s-") && !user.is_empty()).then_some(user);
    }
    // Legacy `<user>.<session-id>`: the session id is hex; split at the last dot.
    let (user, session) = stream.rsplit_once('.')?;
    let hex = session.len() >= 8 && session.bytes().all(|b| b.is_ascii_hexdigit());
    (hex && !user.is_empty()).then_some(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Parsed;
    use crate::parse::parse;

    fn server_event(msg: &str) -> ServerEvent<'_> {
        match parse(msg).expect("parses") {
            Parsed::Server { event, .. } => event,
            other => panic!("not a server event: {other:?}"),
        }
    }

    fn raw(group: &str, stream: &str, ts: i64, msg: &str) -> RawEvent {
        RawEvent {
            log_group: group.into(),
            log_stream: stream.into(),
            event_id: String::new(),
            timestamp_ms: ts,
            message: msg.into(),
        }
    }

    /// Attributes `raw` (parsing its message) and returns an owned result.
    fn attr(a: &mut Attributor, raw: RawEvent) -> Attribution<'static> {
        let ev = server_event(&raw.message);
        let at = a.attribute(&ev, &raw);
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        Attribution {
            server_id: at.server_id.map(own),
            user: at.user.map(own),
            source: at.source,
        }
    }

    #[test]
    fn short_strings_read_back_and_compare_as_their_text() {
        let long = "x".repeat(SHORT_BYTES + 1);
        let exact = "é".repeat(SHORT_BYTES / 2);
        for t in ["", "a", "26315c40e111fcf04b00", &exact, &long] {
            let s = Short::new(t);
            assert_eq!(s.as_str(), t);
            assert_eq!(s, Short::new(t));
            assert_ne!(s, Short::new(&format!("{t}y")));
        }
        assert!(matches!(Short::new(&exact), Short::Inline { .. }));
        assert!(matches!(Short::new(&long), Short::Heap(_)));
    }

    #[test]
    fn user_from_stream_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("s-0123456789abcdef0/jdoe", Some("jdoe")),
            (
                "s-0123456789abcdef0/first.last@example.com",
                Some("first.last@example.com"),
            ),
            ("jdoe.0a700c01575303e3", Some("jdoe")),
            ("first.last.0a700c01575303e3", Some("first.last")),
            ("ERRORS", None),
            ("", None),
            ("w-0123456789abcdef0/exec-1", None),
            ("jdoe.notasession", None),
            ("s-0123456789abcdef0/", None),
            (".0a700c01575303e3", None),
        ];
        for (stream, want) in cases {
            assert_eq!(user_from_stream(stream), *want, "stream: {stream:?}");
        }
    }

    #[test]
    fn server_from_group_table() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "/aws/transfer/s-0123456789abcdef0",
                Some("s-0123456789abcdef0"),
            ),
            (
                "/aws/transfer/c-0123456789abcdef0",
                Some("c-0123456789abcdef0"),
            ),
            ("/aws/transfer/", None),
            ("/my/structured/group", None),
            ("/aws/transfer/a/b", None),
        ];
        for (group, want) in cases {
            assert_eq!(server_from_group(group), *want, "group: {group:?}");
        }
    }

    const ARN: &str = "arn:aws:transfer:eu-west-1:111122223333:server/s-0123456789abcdef0";

    #[test]
    fn session_id_attributes_later_events_until_ttl() {
        let mut a = Attributor::new(10, Duration::from_secs(60));
        let connected = format!(
            r#"{{"activity-type":"CONNECTED","resource-arn":"{ARN}","user":"jdoe","session-id":"26315c40e111fcf04b00"}}"#
        );
        let error = format!(
            r#"{{"activity-type":"ERROR","resource-arn":"{ARN}","message":"Access denied","session-id":"26315c40e111fcf04b00"}}"#
        );
        let at = attr(&mut a, raw("/g", "", 1_000, &connected));
        assert_eq!(
            (at.user.as_deref(), at.source),
            (Some("jdoe"), UserSource::Field)
        );
        // No stream name: only the session map can tell.
        let at = attr(&mut a, raw("/g", "", 30_000, &error));
        assert_eq!(
            (at.user.as_deref(), at.source),
            (Some("jdoe"), UserSource::Session)
        );
        assert_eq!(at.server_id.as_deref(), Some("s-0123456789abcdef0"));
        // 60 s after the last use the entry has expired.
        let at = attr(&mut a, raw("/g", "", 91_000, &error));
        assert_eq!((at.user, at.source), (None, UserSource::None));
    }

    #[test]
    fn lru_bound_holds() {
        let mut a = Attributor::new(3, Duration::from_secs(3600));
        for i in 0..10 {
            let m = format!(
                r#"{{"activity-type":"CONNECTED","resource-arn":"{ARN}","user":"u{i}","session-id":"s{i}"}}"#
            );
            attr(&mut a, raw("/g", "", i, &m));
        }
        assert_eq!(a.len(), 3);
    }

    #[test]
    fn legacy_line_takes_server_from_group_and_user_from_stream_token() {
        let mut a = Attributor::new(10, Duration::from_secs(60));
        let line = "jdoe.0a700c01575303e3 CLOSE Path=/example-bucket/jdoe/in/a.csv BytesIn=2048";
        let at = attr(
            &mut a,
            raw("/aws/transfer/s-0123456789abcdef0", "", 0, line),
        );
        assert_eq!(at.server_id.as_deref(), Some("s-0123456789abcdef0"));
        assert_eq!(
            (at.user.as_deref(), at.source),
            (Some("jdoe"), UserSource::Stream)
        );
    }

    #[test]
    fn structured_stream_name_attributes_error_without_session() {
        let mut a = Attributor::new(10, Duration::from_secs(60));
        let m = format!(
            r#"{{"activity-type":"ERROR","resource-arn":"{ARN}","message":"Error performing readdir","session-id":"365df67affe36e4b123d"}}"#
        );
        let at = attr(&mut a, raw("/shared", "s-0123456789abcdef0/jdoe", 0, &m));
        assert_eq!(
            (at.user.as_deref(), at.source),
            (Some("jdoe"), UserSource::Stream)
        );
    }
}
