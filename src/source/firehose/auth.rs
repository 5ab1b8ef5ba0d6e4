//! Access keys: every non-empty (trimmed) line of the key file is an
//! accepted `X-Amz-Firehose-Access-Key`, so a key is rotated by listing the
//! old and the new one, reconfiguring Firehose, then removing the old one.
//! The file is re-read when its modification time or size changes (checked
//! at most once per [`RELOAD_CHECK_INTERVAL`]), so rotation needs no restart.
//!
//! The presented key is compared with **every** configured key in constant
//! time (`subtle`), and a missing header is compared like an empty key, so
//! neither timing nor the answer tells a missing key from a wrong one, nor
//! which configured key came close. Keys never reach a log line or a
//! `Debug` output.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use subtle::ConstantTimeEq;

use super::errors::FirehoseError;

/// How often a request may trigger a look at the key file's metadata. One
/// `stat` per second costs nothing and makes a rotation take effect within
/// a second.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Firehose sends keys of at most 4,096 bytes; longer lines are refused at
/// load time so a mistake (a binary file) is noticed.
pub const MAX_KEY_BYTES: usize = 4096;

/// The accepted keys. `Debug` prints how many, never which.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KeySet(Vec<Vec<u8>>);

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeySet({} keys, redacted)", self.0.len())
    }
}

impl KeySet {
    /// Parses a key file's content: one key per non-empty trimmed line.
    pub fn parse(content: &str) -> Result<KeySet, String> {
        let mut keys = Vec::new();
        for (i, line) in content.lines().enumerate() {
            let k = line.trim();
            if k.is_empty() {
                continue;
            }
            if k.len() > MAX_KEY_BYTES {
                return Err(format!(
                    "line {} is longer than {MAX_KEY_BYTES} bytes (Firehose's limit)",
                    i + 1
                ));
            }
            keys.push(k.as_bytes().to_vec());
        }
        if keys.is_empty() {
            return Err("no key in the file (every non-empty line is a key)".to_owned());
        }
        Ok(KeySet(keys))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `presented` equals one of the keys. Looks at every key
    /// whatever the outcome; each comparison is constant-time for equal
    /// lengths (only the length of a key can show in the timing).
    pub fn accepts(&self, presented: Option<&[u8]>) -> bool {
        let p = presented.unwrap_or(b"");
        let mut ok = subtle::Choice::from(0u8);
        for k in &self.0 {
            ok |= k.as_slice().ct_eq(p);
        }
        // A missing header never matches, even against a (refused) empty key.
        bool::from(ok) && presented.is_some()
    }
}

/// How requests are authenticated.
pub enum Authenticator {
    /// `allow_unauthenticated`: every request is accepted.
    Open,
    /// Keys from a file, reloaded when it changes.
    File(FileKeys),
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Authenticator::Open => f.write_str("Authenticator::Open"),
            Authenticator::File(k) => write!(f, "Authenticator::File({})", k.path.display()),
        }
    }
}

impl Authenticator {
    /// Loads the key file, or refuses to start without one unless
    /// unauthenticated access was asked for explicitly.
    pub fn new(path: Option<&Path>, allow_unauthenticated: bool) -> Result<Self, FirehoseError> {
        match path {
            Some(p) => Ok(Authenticator::File(FileKeys::load(p)?)),
            None if allow_unauthenticated => Ok(Authenticator::Open),
            None => Err(FirehoseError::NoAccessKey),
        }
    }

    pub fn check(&self, presented: Option<&[u8]>) -> bool {
        match self {
            Authenticator::Open => true,
            Authenticator::File(k) => k.check(presented),
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self, Authenticator::Open)
    }
}

/// Identity of a file version: a change of either triggers a reload.
type Stamp = (Option<SystemTime>, u64);

struct Loaded {
    keys: KeySet,
    stamp: Stamp,
    checked: Instant,
}

/// Keys from a file, reloaded when the file changes.
pub struct FileKeys {
    path: PathBuf,
    state: Mutex<Loaded>,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let md = std::fs::metadata(path)?;
    Ok((md.modified().ok(), md.len()))
}

fn read_keys(path: &Path) -> Result<(KeySet, Stamp), FirehoseError> {
    let bad = |reason: String| FirehoseError::AccessKeyFile {
        path: path.to_path_buf(),
        reason,
    };
    let st = stamp(path).map_err(|e| bad(e.to_string()))?;
    let content = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let keys = KeySet::parse(&content).map_err(bad)?;
    Ok((keys, st))
}

impl FileKeys {
    pub fn load(path: &Path) -> Result<FileKeys, FirehoseError> {
        let (keys, stamp) = read_keys(path)?;
        tracing::info!(path = %path.display(), keys = keys.len(), "firehose access keys loaded");
        Ok(FileKeys {
            path: path.to_path_buf(),
            state: Mutex::new(Loaded {
                keys,
                stamp,
                checked: Instant::now(),
            }),
        })
    }

    pub fn check(&self, presented: Option<&[u8]>) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.checked.elapsed() >= RELOAD_CHECK_INTERVAL {
            st.checked = Instant::now();
            self.reload_if_changed(&mut st);
        }
        st.keys.accepts(presented)
    }

    /// A file that became unreadable or empty keeps the previous keys (and
    /// says so): locking Firehose out by a half-written file is worse.
    fn reload_if_changed(&self, st: &mut Loaded) {
        match stamp(&self.path) {
            Ok(s) if s == st.stamp => {}
            Ok(_) => match read_keys(&self.path) {
                Ok((keys, s)) => {
                    tracing::info!(path = %self.path.display(), keys = keys.len(), "firehose access keys reloaded");
                    st.keys = keys;
                    st.stamp = s;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "firehose access key file changed but cannot be used; keeping the previous keys");
                    if let Ok(s) = stamp(&self.path) {
                        st.stamp = s; // warn once per change
                    }
                }
            },
            Err(err) => {
                tracing::warn!(path = %self.path.display(), error = %err, "firehose access key file unreadable; keeping the previous keys");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let cases: &[(&str, Result<usize, ()>)] = &[
            ("k1\n", Ok(1)),
            ("  k1  \n\n\tk2\r\n", Ok(2)),
            ("\n \n", Err(())),
            ("", Err(())),
        ];
        for (input, want) in cases {
            let got = KeySet::parse(input).map(|k| k.len()).map_err(|_| ());
            assert_eq!(&got, want, "input {input:?}");
        }
        let long = "x".repeat(MAX_KEY_BYTES + 1);
        assert!(KeySet::parse(&long).is_err());
    }

    #[test]
    fn accepts_every_listed_key_and_nothing_else() {
        let k = KeySet::parse("old-key\nnew-key\n").unwrap();
        let cases: &[(Option<&[u8]>, bool)] = &[
            (Some(b"old-key"), true),
            (Some(b"new-key"), true),
            (Some(b"new-ke"), false),
            (Some(b"new-keyy"), false),
            (Some(b""), false),
            (Some(b" new-key"), false),
            (None, false),
        ];
        for (p, want) in cases {
            assert_eq!(
                k.accepts(*p),
                *want,
                "presented {:?}",
                p.map(String::from_utf8_lossy)
            );
        }
    }

    #[test]
    fn debug_never_shows_a_key() {
        let k = KeySet::parse("super-secret-1\n").unwrap();
        assert!(!format!("{k:?}").contains("super-secret"));
    }

    #[test]
    fn refuses_to_start_without_keys_unless_open() {
        assert!(matches!(
            Authenticator::new(None, false),
            Err(FirehoseError::NoAccessKey)
        ));
        assert!(Authenticator::new(None, true).unwrap().is_open());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys");
        std::fs::write(&p, "\n").unwrap();
        let err = Authenticator::new(Some(&p), false).unwrap_err().to_string();
        assert!(err.contains("no key"), "{err}");
    }

    #[test]
    fn reloads_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys");
        std::fs::write(&p, "first\n").unwrap();
        let a = Authenticator::new(Some(&p), false).unwrap();
        assert!(a.check(Some(b"first")));
        std::fs::write(&p, "first\nsecond-key\n").unwrap();
        std::thread::sleep(RELOAD_CHECK_INTERVAL + Duration::from_millis(50));
        assert!(a.check(Some(b"second-key")));
        // An emptied file keeps the previous keys.
        std::fs::write(&p, "").unwrap();
        std::thread::sleep(RELOAD_CHECK_INTERVAL + Duration::from_millis(50));
        assert!(a.check(Some(b"first")));
    }
}
