//! CloudWatch Logs helpers against moto: create groups and streams, write
//! events in PutLogEvents-sized batches. Blocking wrappers over the SDK so
//! tests stay plain `#[test]` functions.

use std::sync::OnceLock;

use aws_sdk_cloudwatchlogs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_sdk_cloudwatchlogs::Client;

use super::REGION;

/// PutLogEvents limits: 10,000 events and 1,048,576 bytes per call, where
/// each event counts its UTF-8 message length plus 26 bytes; the events of
/// one call must span less than 24 hours.
pub const MAX_BATCH_EVENTS: usize = 10_000;
pub const MAX_BATCH_BYTES: usize = 1_048_576;
pub const EVENT_OVERHEAD_BYTES: usize = 26;
const MAX_BATCH_SPAN_MS: i64 = 24 * 3600 * 1000 - 1;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("test runtime")
    })
}

/// A CloudWatch Logs client for moto with fake credentials.
pub struct Logs {
    pub client: Client,
}

impl Logs {
    pub fn new(endpoint_url: &str) -> Logs {
        let conf = aws_sdk_cloudwatchlogs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(endpoint_url)
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .build();
        Logs {
            client: Client::from_conf(conf),
        }
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        runtime().block_on(f)
    }

    pub fn create_group(&self, group: &str) {
        self.block_on(self.client.create_log_group().log_group_name(group).send())
            .unwrap_or_else(|e| panic!("CreateLogGroup {group}: {e:?}"));
    }

    pub fn delete_group(&self, group: &str) {
        self.block_on(self.client.delete_log_group().log_group_name(group).send())
            .unwrap_or_else(|e| panic!("DeleteLogGroup {group}: {e:?}"));
    }

    pub fn create_stream(&self, group: &str, stream: &str) {
        self.block_on(
            self.client
                .create_log_stream()
                .log_group_name(group)
                .log_stream_name(stream)
                .send(),
        )
        .unwrap_or_else(|e| panic!("CreateLogStream {group} {stream}: {e:?}"));
    }

    /// Writes `(timestamp_ms, message)` events to an existing stream,
    /// sorted by time and split into batches within the PutLogEvents limits.
    pub fn put(&self, group: &str, stream: &str, events: &[(i64, String)]) {
        let mut sorted: Vec<&(i64, String)> = events.iter().collect();
        sorted.sort_by_key(|(ts, _)| *ts);
        for batch in batches(&sorted) {
            let input: Vec<InputLogEvent> = batch
                .iter()
                .map(|(ts, msg)| {
                    InputLogEvent::builder()
                        .timestamp(*ts)
                        .message(msg.clone())
                        .build()
                        .expect("timestamp and message set")
                })
                .collect();
            self.block_on(
                self.client
                    .put_log_events()
                    .log_group_name(group)
                    .log_stream_name(stream)
                    .set_log_events(Some(input))
                    .send(),
            )
            .unwrap_or_else(|e| panic!("PutLogEvents {group} {stream}: {e:?}"));
        }
    }

    /// Creates the stream if needed, then writes.
    pub fn put_new(&self, group: &str, stream: &str, events: &[(i64, String)]) {
        let _ = self.block_on(
            self.client
                .create_log_stream()
                .log_group_name(group)
                .log_stream_name(stream)
                .send(),
        );
        self.put(group, stream, events);
    }
}

/// Splits time-sorted events into PutLogEvents-sized batches.
pub fn batches<'a>(sorted: &[&'a (i64, String)]) -> Vec<Vec<&'a (i64, String)>> {
    let mut out: Vec<Vec<&(i64, String)>> = Vec::new();
    let mut cur: Vec<&(i64, String)> = Vec::new();
    let mut bytes = 0;
    for e in sorted {
        let size = e.1.len() + EVENT_OVERHEAD_BYTES;
        let span_ok = cur.first().is_none_or(|f| e.0 - f.0 <= MAX_BATCH_SPAN_MS);
        if !cur.is_empty()
            && (cur.len() == MAX_BATCH_EVENTS || bytes + size > MAX_BATCH_BYTES || !span_ok)
        {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        bytes += size;
        cur.push(e);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Example payloads in the observed structured shape (reference §2.3).
pub mod shapes {
    pub fn arn(server: &str) -> String {
        format!("arn:aws:transfer:eu-west-1:111122223333:server/{server}")
    }
    pub fn connected(server: &str, user: &str, session: &str) -> String {
        format!(
            r#"{{"role":"arn:aws:iam::111122223333:role/sftp-{user}","activity-type":"CONNECTED","home-dir":"/example-bucket/{user}","client":"SSH-2.0-OpenSSH_9.6","source-ip":"198.51.100.7","resource-arn":"{}","user":"{user}","kex":"curve25519-sha256","session-id":"{session}"}}"#,
            arn(server)
        )
    }
    pub fn unknown_user(server: &str, user: &str) -> String {
        format!(
            r#"{{"method":"publickey","activity-type":"AUTH_FAILURE","source-ip":"203.0.113.50","resource-arn":"{}","message":"Authentication failure","user":"{user}"}}"#,
            arn(server)
        )
    }
    pub fn key_mismatch(server: &str, user: &str) -> String {
        format!(
            r#"{{"method":"publickey","activity-type":"AUTH_FAILURE","source-ip":"198.51.100.7","resource-arn":"{}","message":"RSA SHA256:5xnBpqyCABcNrzDPG/YfQw50ZKAtzcetXTX1MOrJslQ","user":"{user}"}}"#,
            arn(server)
        )
    }
    pub fn access_denied(server: &str, session: &str) -> String {
        format!(
            r#"{{"activity-type":"ERROR","resource-arn":"{}","message":"Access denied","session-id":"{session}"}}"#,
            arn(server)
        )
    }
    pub fn assume_role(server: &str, session: &str) -> String {
        format!(
            r#"{{"path":"/example-bucket/jdoe/new","activity-type":"ERROR","resource-arn":"{}","message":"Unable to AssumeRole for user","operation":"MKDIR","session-id":"{session}"}}"#,
            arn(server)
        )
    }
    pub fn readdir(server: &str, session: &str) -> String {
        format!(
            r#"{{"activity-type":"ERROR","resource-arn":"{}","message":"Error performing readdir","session-id":"{session}"}}"#,
            arn(server)
        )
    }
    pub fn close_upload(server: &str, session: &str, bytes: u64) -> String {
        format!(
            r#"{{"path":"/example-bucket/jdoe/in/a.csv","activity-type":"CLOSE","resource-arn":"{}","bytes-in":"{bytes}","session-id":"{session}"}}"#,
            arn(server)
        )
    }
}
