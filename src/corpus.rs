//! A synthetic but realistic mix of Transfer Family log events, for
//! benchmarks and load tests. Shapes are the reference's verbatim events
//! (§2.3, §3, §5) with varied servers, users, sessions and sizes.
//!
//! The mix (per 100 events): 62 structured session events (CONNECTED, OPEN,
//! CLOSE, DISCONNECTED, some IAM/bucket errors), 14 structured auth failures
//! (half from random strangers), 14 legacy text lines, 4 connector lines,
//! 2 AS2, 2 workflow, 2 broken or foreign lines.

use crate::event::RawEvent;

const SERVERS: &[&str] = &[
    "s-0123456789abcdef0",
    "s-0fedcba9876543210",
    "s-00000000000000aaa",
    "s-00000000000000bbb",
];

/// Tiny deterministic generator (xorshift64): the corpus is the same on
/// every run, so benchmark figures compare.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `n` events; `seed` picks the variation.
pub fn mixed(n: usize, seed: u64) -> Vec<RawEvent> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(n);
    let mut ts = 1_764_000_000_000i64;
    while out.len() < n {
        ts += 7;
        let server = SERVERS[rng.below(SERVERS.len() as u64) as usize];
        let arn = format!("arn:aws:transfer:eu-west-1:111122223333:server/{server}");
        let user = format!("partner{:02}", rng.below(40));
        let session = format!("{:020x}", rng.next() as u128 * 7919);
        let slot = rng.below(100);
        let (group, stream, message) = match slot {
            0..=11 => (
                "/aws/transfer/structured".to_owned(),
                format!("{server}/{user}"),
                format!(
                    r#"{{"role":"arn:aws:iam::111122223333:role/sftp-{user}","activity-type":"CONNECTED","ssh-public-key-fingerprint":"SHA256:YfIUQ9Rs7zYpcx1rRUIFmUC7EGxZV4ga1K3Ra3UQ7Mw","home-dir":"/example-bucket/{user}","ssh-public-key-type":"ssh-rsa","macs":"hmac-sha2-512-etm@openssh.com,hmac-sha2-512-etm@openssh.com","ciphers":"aes256-gcm@openssh.com,aes256-gcm@openssh.com","client":"SSH-2.0-OpenSSH_9.6","source-ip":"198.51.100.{}","resource-arn":"{arn}","user":"{user}","kex":"curve25519-sha256","session-id":"{session}"}}"#,
                    rng.below(255)
                ),
            ),
            12..=29 => (
                "/aws/transfer/structured".to_owned(),
                format!("{server}/{user}"),
                format!(
                    r#"{{"path":"/example-bucket/{user}/in/f{}.csv","activity-type":"OPEN","resource-arn":"{arn}","mode":"CREATE|TRUNCATE|WRITE","session-id":"{session}"}}"#,
                    rng.below(1000)
                ),
            ),
            30..=47 => (
                "/aws/transfer/structured".to_owned(),
                format!("{server}/{user}"),
                if rng.below(2) == 0 {
                    format!(
                        r#"{{"path":"/example-bucket/{user}/in/f.csv","activity-type":"CLOSE","resource-arn":"{arn}","bytes-in":"{}","session-id":"{session}"}}"#,
                        rng.below(1 << 30)
                    )
                } else {
                    format!(
                        r#"{{"path":"/example-bucket/{user}/out/f.csv","activity-type":"CLOSE","resource-arn":"{arn}","bytes-out":{},"session-id":"{session}"}}"#,
                        rng.below(1 << 30)
                    )
                },
            ),
            48..=57 => (
                "/aws/transfer/structured".to_owned(),
                format!("{server}/{user}"),
                format!(
                    r#"{{"activity-type":"DISCONNECTED","resource-arn":"{arn}","session-id":"{session}"}}"#
                ),
            ),
            58..=61 => (
                "/aws/transfer/structured".to_owned(),
                format!("{server}/{user}"),
                match rng.below(3) {
                    0 => format!(
                        r#"{{"s3extended-request-id":"x","path":"/example-bucket/{user}","activity-type":"ERROR","resource-arn":"{arn}","message":"Access denied","request-id":"y","operation":"MKDIR","session-id":"{session}"}}"#
                    ),
                    1 => format!(
                        r#"{{"path":"/example-bucket/{user}/new","activity-type":"ERROR","resource-arn":"{arn}","message":"Unable to AssumeRole for user","operation":"MKDIR","session-id":"{session}"}}"#
                    ),
                    _ => format!(
                        r#"{{"activity-type":"ERROR","resource-arn":"{arn}","message":"Error performing readdir","session-id":"{session}"}}"#
                    ),
                },
            ),
            62..=68 => (
                "/aws/transfer/structured".to_owned(),
                "ERRORS".to_owned(),
                format!(
                    r#"{{"method":"publickey","activity-type":"AUTH_FAILURE","source-ip":"203.0.113.{}","resource-arn":"{arn}","message":"Authentication failure","user":"scan{:x}"}}"#,
                    rng.below(255),
                    rng.next()
                ),
            ),
            69..=75 => (
                "/aws/transfer/structured".to_owned(),
                "ERRORS".to_owned(),
                format!(
                    r#"{{"method":"publickey","activity-type":"AUTH_FAILURE","source-ip":"198.51.100.7","resource-arn":"{arn}","message":"RSA SHA256:5xnBpqyCABcNrzDPG/YfQw50ZKAtzcetXTX1MOrJslQ","user":"{user}"}}"#
                ),
            ),
            76..=89 => {
                let legacy_session = &session[..16];
                let group = format!("/aws/transfer/{server}");
                let stream = format!("{user}.{legacy_session}");
                let msg = match rng.below(5) {
                    0 => format!("{stream} CONNECTED SourceIP=198.51.100.7 User={user} HomeDir=/example-bucket/{user} Client=SSH-2.0-OpenSSH_9.6 Role=arn:aws:iam::111122223333:role/sftp-{user}"),
                    1 => format!("{stream} OPEN Path=/example-bucket/{user}/in/a.csv Mode=CREATE|TRUNCATE|WRITE"),
                    2 => format!("{stream} CLOSE Path=/example-bucket/{user}/in/a.csv BytesIn={}", rng.below(1 << 20)),
                    3 => format!("ERRORS AUTH_FAILURE Method=publickey User=scan{:x} Message=\"The user is unrecognized\" SourceIP=203.0.113.50", rng.next()),
                    _ => format!("{stream} ERROR Message=\"Access denied\" Operation=CLOSE Path=/example-bucket/{user}/in/c.csv BytesIn=27"),
                };
                let stream = if msg.starts_with("ERRORS") {
                    "ERRORS".to_owned()
                } else {
                    stream
                };
                (group, stream, msg)
            }
            90..=93 => {
                let c = format!("c-{:017x}", rng.below(4));
                let ok = rng.below(4) != 0;
                let msg = if ok {
                    format!(
                        r#"{{"operation":"SEND","timestamp":"2025-11-25T10:00:00Z","connector-id":"{c}","transfer-id":"{session}","file-transfer-id":"{session}/1","url":"sftp://partner.example.com","file-path":"/bucket/out/x.csv","status-code":"COMPLETED","bytes":{},"egress-type":"SERVICE_MANAGED"}}"#,
                        rng.below(1 << 20)
                    )
                } else {
                    format!(
                        r#"{{"operation":"SEND","timestamp":"2025-11-25T10:00:00Z","connector-id":"{c}","transfer-id":"{session}","status-code":"FAILED","failure-code":"TIMEOUT_ERROR","failure-message":"Transfer request timeout."}}"#
                    )
                };
                (format!("/aws/transfer/{c}"), c, msg)
            }
            94..=95 => (
                format!("/aws/transfer/{server}"),
                "as2".to_owned(),
                format!(
                    r#"{{"agreement-id":"a-1","as2-message-id":"{session}","server-id":"{server}","status-code":"{}","failure-code":"DECRYPT_FAILED","transfer-size":100}}"#,
                    if rng.below(2) == 0 {
                        "COMPLETED"
                    } else {
                        "FAILED"
                    }
                ),
            ),
            96..=97 => (
                format!("/aws/transfer/{server}"),
                format!("{user}.w-0123456789abcdef0.x"),
                format!(
                    r#"{{"type":"StepErrored","details":{{"errorType":"BAD_REQUEST","errorMessage":"Bad Request","stepType":"COPY","stepName":"copy"}},"workflowId":"w-0123456789abcdef0","executionId":"{session}","transferDetails":{{"serverId":"{server}","username":"{user}","sessionId":"{session}"}}}}"#
                ),
            ),
            _ => (
                "/aws/transfer/structured".to_owned(),
                "x".to_owned(),
                if rng.below(2) == 0 {
                    r#"{"operation":"SEND","connector-id":"c-1" "status-code":"COMPLETED"}"#
                        .to_owned()
                } else {
                    "START RequestId: 8f5 Version: $LATEST".to_owned()
                },
            ),
        };
        out.push(RawEvent {
            log_group: group,
            log_stream: stream,
            event_id: out.len().to_string(),
            timestamp_ms: ts,
            message,
        });
    }
    out
}
