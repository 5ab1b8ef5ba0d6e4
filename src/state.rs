//! The state store: what must survive a restart. Today's store is one JSON
//! file ([`FileStore`]). It holds each source's progress as an opaque value
//! the source owns, in its slot (the CloudWatch poller's per-group
//! checkpoints, remembered ids and sweep positions, per target; the Firehose
//! receiver's finished request ids), every counter's value, and the last
//! session per user (the silent-partner gauge), so the store depends on no
//! stage of the flow: the stages depend on it. What is written when, and
//! why it is consistent, is `crate::persist`'s job.
//!
//! Written atomically: a temporary file in the same directory is written and
//! fsynced, renamed over the old file, and the directory is fsynced, so a
//! crash at any point leaves either the old or the new file, never a torn
//! one. Between such whole writes, [`StateStore::save_changes`] appends
//! only what changed to a journal next to the file ([`journal`]), which a
//! load folds in. A missing file means "first start"; an unreadable one is moved aside
//! (`<path>.corrupt`) and reported, and the daemon starts from the
//! configured position rather than crashing.
//!
//! What a restart guarantees: each file is one consistent snapshot (the
//! counters describe exactly the events behind the saved progress), so a
//! new process resumes the counters and counts only the events after the
//! saved progress (see `crate::persist` and the README).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub mod journal;

pub use journal::StateChanges;

/// The last CONNECTED of a user, persisted so a restart does not reset the
/// silent-partner gauge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastSession {
    pub server_id: String,
    pub user: String,
    pub timestamp_seconds: f64,
}

/// Version of the file layout; a file with another version is treated as
/// unreadable (reported, moved aside) rather than misread.
pub const STATE_VERSION: u32 = 1;

/// Everything persisted.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct StateFile {
    pub version: u32,
    /// When it was written, Unix milliseconds (for people reading the file).
    #[serde(default)]
    pub saved_at_ms: i64,
    /// Which journal records belong to this file (see [`journal`]): a
    /// random number given by each whole write. 0 in files written before
    /// the journal.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub journal_epoch: u64,
    /// Files written before sources had slots: target name -> that
    /// target's CloudWatch progress. Read into `parts["cloudwatch"]` on load;
    /// never written.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub targets: BTreeMap<String, serde_json::Value>,
    /// slot -> that source's progress, as the source wrote it (the
    /// CloudWatch poller under `cloudwatch`: target name -> log group name
    /// -> checkpoint; the Firehose receiver under `firehose`: finished
    /// request ids).
    #[serde(default)]
    pub parts: BTreeMap<String, serde_json::Value>,
    /// Last CONNECTED per (server, user), restored into the pipeline.
    #[serde(default)]
    pub last_sessions: Vec<LastSession>,
    /// Every counter series as it stood when this state was taken, taken
    /// together with the progress above (the same events behind both), so a
    /// new process resumes the counters where the last served scrape left
    /// them and counts only the events after the saved progress. One entry
    /// per family: label names once, then `[value, [label values]]` per
    /// series (a third of the size of one object per series).
    #[serde(default)]
    pub counter_families: Vec<SavedFamily>,
    /// The first layout of the same (one object per series). Read, never
    /// written: [`load`] moves it into `counter_families`.
    #[serde(default, skip_serializing)]
    pub counters: Vec<SavedCounter>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// One counter series in the first layout: family name, labels, value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedCounter {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One counter family: its label names (sorted) and its series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedFamily {
    pub name: String,
    pub labels: Vec<String>,
    pub series: Vec<SavedSeries>,
}

/// One series of a [`SavedFamily`]: the value and the label values, in the
/// order of the family's label names. Written as `[value, [values…]]`.
/// The label values are shared with the metric store, not copied.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedSeries {
    pub value: u64,
    pub labels: Arc<[Box<str>]>,
}

impl Serialize for SavedSeries {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.value, &*self.labels).serialize(s)
    }
}

impl<'de> Deserialize<'de> for SavedSeries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (value, labels) = <(u64, Vec<Box<str>>)>::deserialize(d)?;
        Ok(SavedSeries {
            value,
            labels: labels.into(),
        })
    }
}

/// The first layout's series grouped into families (label names sorted,
/// as a [`SavedFamily`] keeps them). Values that are not whole,
/// non-negative numbers are dropped.
pub fn families_from_counters(counters: &[SavedCounter]) -> Vec<SavedFamily> {
    let mut by_key: BTreeMap<(&str, Vec<&str>), Vec<SavedSeries>> = BTreeMap::new();
    for c in counters {
        if !(c.value.is_finite() && c.value >= 0.0) {
            continue;
        }
        let names: Vec<&str> = c.labels.keys().map(String::as_str).collect();
        by_key
            .entry((c.name.as_str(), names))
            .or_default()
            .push(SavedSeries {
                value: c.value as u64,
                labels: c.labels.values().map(|v| v.as_str().into()).collect(),
            });
    }
    by_key
        .into_iter()
        .map(|((name, labels), series)| SavedFamily {
            name: name.to_owned(),
            labels: labels.into_iter().map(str::to_owned).collect(),
            series,
        })
        .collect()
}

/// Why a state file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid state file: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} has state version {found}, expected {STATE_VERSION}")]
    Version { path: PathBuf, found: u32 },
}

/// Reads the state file. `Ok(None)` when it does not exist.
pub fn load(path: &Path) -> Result<Option<StateFile>, LoadError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(LoadError::Io {
                path: path.to_owned(),
                source: e,
            })
        }
    };
    let state: StateFile = serde_json::from_slice(&bytes).map_err(|e| LoadError::Corrupt {
        path: path.to_owned(),
        source: e,
    })?;
    let mut state = state;
    if state.version != STATE_VERSION {
        return Err(LoadError::Version {
            path: path.to_owned(),
            found: state.version,
        });
    }
    if !state.counters.is_empty() {
        let legacy = std::mem::take(&mut state.counters);
        state
            .counter_families
            .extend(families_from_counters(&legacy));
    }
    Ok(Some(upgrade(state)))
}

/// Slot of the CloudWatch poller's progress.
pub const CLOUDWATCH_SLOT: &str = "cloudwatch";

/// Moves the progress of a file written before sources had slots into the
/// CloudWatch slot.
fn upgrade(mut state: StateFile) -> StateFile {
    if !state.targets.is_empty() && !state.parts.contains_key(CLOUDWATCH_SLOT) {
        let targets = std::mem::take(&mut state.targets);
        state.parts.insert(
            CLOUDWATCH_SLOT.to_owned(),
            serde_json::Value::Object(targets.into_iter().collect()),
        );
    }
    state.targets.clear();
    state
}

/// Loads the state file, never failing: a missing file is a first start, an
/// unreadable one is logged and moved aside to `<path>.corrupt`.
pub fn load_or_default(path: &Path) -> StateFile {
    match load(path) {
        Ok(Some(s)) => {
            tracing::info!(path = %path.display(), sources = s.parts.len(), counters = s.counters.len(), "state file loaded; resuming");
            s
        }
        Ok(None) => {
            tracing::info!(path = %path.display(), "no state file; every group starts at its initial lookback");
            StateFile::default()
        }
        Err(err) => {
            // Only a regular file is moved aside: anything else at the path
            // (a directory, a socket) is not ours to move; the config check
            // refuses such a path before we get here.
            let aside = aside_path(path);
            let is_file = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file());
            let moved = is_file && std::fs::rename(path, &aside).is_ok();
            tracing::error!(
                path = %path.display(),
                error = %err,
                moved_to = %if moved { aside.display().to_string() } else { String::from("(not moved)") },
                "state file unreadable; every group starts at its initial lookback"
            );
            StateFile::default()
        }
    }
}

fn aside_path(path: &Path) -> PathBuf {
    with_suffix(path, ".corrupt")
}

/// `path` with `suffix` appended to its file name: the files the store
/// keeps next to the state file.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes `state` to `path` atomically (temp file, fsync, rename, fsync
/// directory). Creates the parent directory if needed. Returns the bytes
/// written.
pub fn write_atomic(path: &Path, state: &StateFile) -> std::io::Result<u64> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(&mut f);
        serde_json::to_writer(&mut w, state)?;
        w.flush()?;
        drop(w);
        f.sync_all()?;
        let len = f.metadata()?.len();
        std::fs::rename(&tmp, path)?;
        // The rename is durable only once the directory entry is.
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(len)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StateFile {
        let mut parts = BTreeMap::new();
        parts.insert(
            CLOUDWATCH_SLOT.to_owned(),
            serde_json::json!({"default": {"/aws/transfer/s-1": {"checkpoint_ms": 990000}}}),
        );
        StateFile {
            version: STATE_VERSION,
            saved_at_ms: 1,
            journal_epoch: 0,
            targets: BTreeMap::new(),
            parts,
            last_sessions: Vec::new(),
            counter_families: vec![SavedFamily {
                name: "aws_transfer_errors_total".into(),
                labels: vec!["cause".to_owned()],
                series: vec![SavedSeries {
                    value: 3,
                    labels: vec!["key_mismatch".into()].into(),
                }],
            }],
            counters: Vec::new(),
        }
    }

    #[test]
    fn write_then_load_roundtrips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        write_atomic(&path, &sample()).unwrap();
        let back = load(&path).unwrap().expect("exists");
        assert_eq!(back.parts, sample().parts);
        assert_eq!(back.counter_families, sample().counter_families);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(r#""counter_families":[{"name":"aws_transfer_errors_total","labels":["cause"],"series":[[3,["key_mismatch"]]]}]"#),
            "{text}"
        );
        assert!(!text.contains(r#""counters""#), "{text}");
        assert!(
            !text.contains("\"targets\""),
            "the old field is not written: {text}"
        );
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temp file left: {leftovers:?}");
    }

    /// A file written before sources had slots keeps its CloudWatch
    /// progress (no group restarts from its initial lookback on upgrade).
    #[test]
    fn a_file_from_before_slots_is_read_into_the_cloudwatch_slot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(
            &path,
            r#"{"version":1,"targets":{"default":{"/g":{"checkpoint_ms":5}}},"counters":[]}"#,
        )
        .unwrap();
        let s = load(&path).unwrap().expect("exists");
        assert!(s.targets.is_empty());
        assert_eq!(
            s.parts[CLOUDWATCH_SLOT],
            serde_json::json!({"default": {"/g": {"checkpoint_ms": 5}}})
        );
    }

    /// A file written by the first layout (one object per counter series)
    /// resumes the same counters.
    #[test]
    fn first_layout_counters_load_as_families() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(
            &path,
            r#"{"version":1,"counters":[
              {"name":"a_total","labels":{"user":"u1","server_id":"s-1"},"value":3.0},
              {"name":"a_total","labels":{"server_id":"s-1","user":"u2"},"value":5.0},
              {"name":"b_total","labels":{},"value":7.0},
              {"name":"b_total","labels":{},"value":-1.0}]}"#,
        )
        .unwrap();
        let s = load(&path).unwrap().expect("exists");
        assert!(s.counters.is_empty());
        let row = |v: u64, l: &[&str]| SavedSeries {
            value: v,
            labels: l.iter().map(|s| Box::<str>::from(*s)).collect(),
        };
        assert_eq!(
            s.counter_families,
            vec![
                SavedFamily {
                    name: "a_total".into(),
                    labels: vec!["server_id".into(), "user".into()],
                    series: vec![row(3, &["s-1", "u1"]), row(5, &["s-1", "u2"])],
                },
                SavedFamily {
                    name: "b_total".into(),
                    labels: vec![],
                    series: vec![row(7, &[])],
                },
            ]
        );
    }

    /// Whole write, records, load: the records are folded in. A state
    /// file deleted or replaced behind our back makes the next write whole
    /// (a record would apply to a file that is gone).
    #[test]
    fn file_store_journals_changes_until_the_file_goes_away() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let store = FileStore::new(&path);
        assert!(store.wants_whole(), "nothing written yet");
        let mut s = sample();
        store.save(&mut s).unwrap();
        assert_ne!(s.journal_epoch, 0);
        assert!(!store.wants_whole());
        let mut c = StateChanges::default();
        c.patches.insert(
            CLOUDWATCH_SLOT.into(),
            serde_json::json!({"default": {"/g2": {"checkpoint_ms": 7}}}),
        );
        store.save_changes(&c).unwrap();
        let back = FileStore::new(&path).load();
        assert_eq!(
            back.parts[CLOUDWATCH_SLOT]["default"]["/g2"]["checkpoint_ms"],
            7
        );
        assert_eq!(back.journal_epoch, s.journal_epoch);
        std::fs::remove_file(&path).unwrap();
        assert!(store.wants_whole(), "the state file was deleted");
        store.save(&mut sample()).unwrap();
        assert!(!store.wants_whole());
        std::fs::copy(&path, dir.path().join("copy")).unwrap();
        std::fs::rename(dir.path().join("copy"), &path).unwrap();
        assert!(store.wants_whole(), "the state file was replaced");
    }

    /// A new store continues the journal it loaded when it is intact; a
    /// torn tail, a header cut short or a missing journal make its first
    /// write whole.
    #[test]
    fn a_loaded_journal_is_continued_only_when_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let jpath = journal_path(&path);
        let record = |k: &str| {
            let mut c = StateChanges::default();
            c.patches.insert(
                CLOUDWATCH_SLOT.into(),
                serde_json::json!({ k: {"checkpoint_ms": 1} }),
            );
            c
        };
        let first = FileStore::new(&path);
        first.save(&mut sample()).unwrap();
        first.save_changes(&record("a")).unwrap();

        let second = FileStore::new(&path);
        let loaded = second.load();
        assert!(loaded.parts[CLOUDWATCH_SLOT].get("a").is_some());
        assert!(!second.wants_whole(), "intact journal: continued");
        second.save_changes(&record("b")).unwrap();
        let third = FileStore::new(&path).load();
        assert!(third.parts[CLOUDWATCH_SLOT].get("a").is_some());
        assert!(third.parts[CLOUDWATCH_SLOT].get("b").is_some());

        // Torn tail: read up to it, not continued.
        let mut bytes = std::fs::read(&jpath).unwrap();
        bytes.extend_from_slice(&[9, 9]);
        std::fs::write(&jpath, &bytes).unwrap();
        let torn = FileStore::new(&path);
        assert!(torn.load().parts[CLOUDWATCH_SLOT].get("b").is_some());
        assert!(torn.wants_whole(), "torn tail: the first write is whole");

        // Header cut short (an emptying interrupted): not continued.
        std::fs::write(&jpath, &journal::MAGIC[..5]).unwrap();
        let cut = FileStore::new(&path);
        cut.load();
        assert!(cut.wants_whole(), "header cut short");

        // No journal at all: not continued (nothing to append to).
        std::fs::remove_file(&jpath).unwrap();
        let none = FileStore::new(&path);
        none.load();
        assert!(none.wants_whole(), "no journal");

        // A state file from before the journal (epoch 0): not continued.
        let mut old = sample();
        old.journal_epoch = 0;
        write_atomic(&path, &old).unwrap();
        std::fs::write(&jpath, journal::MAGIC).unwrap();
        let pre = FileStore::new(&path);
        pre.load();
        assert!(pre.wants_whole(), "a base without an epoch");
    }

    /// A continued journal that already outweighs its base asks for a
    /// compaction at once (the flusher's first tick, at start), so lives
    /// that crash before their first periodic flush do not grow it without
    /// bound.
    #[test]
    fn a_continued_heavy_journal_asks_for_compaction_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let first = FileStore::new(&path);
        first.save(&mut sample()).unwrap();
        let big = "x".repeat(1 << 20);
        for i in 0..9 {
            let mut c = StateChanges::default();
            c.patches.insert(
                CLOUDWATCH_SLOT.into(),
                serde_json::json!({ format!("k{i}"): big }),
            );
            first.save_changes(&c).unwrap();
        }
        drop(first);
        let next = FileStore::new(&path);
        next.load();
        assert!(!next.wants_whole(), "continued");
        assert!(next.wants_compaction(), "9 MiB over a small base");
    }

    /// One exclusive store per state path: a second is refused with the
    /// holder's pid; dropping the first frees the path. Something at the
    /// lock path that is not a regular file is left alone (the store runs
    /// unlocked, as before locks existed).
    #[test]
    fn one_exclusive_store_per_state_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        let first = FileStore::exclusive(&path).expect("free");
        let err = FileStore::exclusive(&path).expect_err("held");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.starts_with("state.path "), "{msg}");
        assert!(msg.contains("--state.path"), "{msg}");
        drop(first);
        let again = FileStore::exclusive(&path).expect("free after drop");
        drop(again);

        let other = dir.path().join("other.json");
        std::fs::create_dir(lock_path(&other)).unwrap();
        std::fs::write(lock_path(&other).join("x"), "keep").unwrap();
        let unlocked = FileStore::exclusive(&other).expect("runs unlocked");
        assert!(unlocked._lock.is_none());
        assert_eq!(
            std::fs::read_to_string(lock_path(&other).join("x")).unwrap(),
            "keep"
        );
    }

    #[test]
    fn missing_file_is_a_first_start() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(&dir.path().join("nope.json")).unwrap().is_none());
    }

    /// Table: bad file contents, each reported and moved aside.
    #[test]
    fn unreadable_files_are_reported_and_moved_aside() {
        let cases: &[(&str, &str)] = &[
            ("empty", ""),
            ("truncated", "{\"version\":1,\"targets\":{\"a\":"),
            ("not json", "hello"),
            ("wrong version", "{\"version\":99}"),
            ("wrong shape", "{\"version\":1,\"targets\":[1,2]}"),
        ];
        for (name, text) in cases {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state.json");
            std::fs::write(&path, text).unwrap();
            assert!(load(&path).is_err(), "{name}: should not load");
            let s = load_or_default(&path);
            assert!(s.parts.is_empty(), "{name}");
            assert!(!path.exists(), "{name}: moved aside");
            assert!(dir.path().join("state.json.corrupt").exists(), "{name}");
        }
    }

    #[test]
    fn a_directory_at_the_path_is_never_moved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("keep"), "mine").unwrap();
        let s = load_or_default(&path);
        assert!(s.parts.is_empty());
        assert!(path.is_dir(), "the directory stays where it was");
        assert_eq!(std::fs::read_to_string(path.join("keep")).unwrap(), "mine");
        assert!(!dir.path().join("state.json.corrupt").exists());
    }

    #[test]
    fn write_to_an_unwritable_place_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "x").unwrap();
        // parent is a regular file: cannot create the directory
        assert!(write_atomic(&blocker.join("state.json"), &sample()).is_err());
    }
}

/// Where state is kept. The file is today's implementation; the trait keeps
/// the sources and the app independent of it.
pub trait StateStore: Send + Sync + 'static {
    /// What was saved last, or an empty state on a first start (never
    /// fails: an unreadable state is reported and treated as a first start).
    fn load(&self) -> StateFile;
    /// Saves the whole state durably: when this returns `Ok`, a crash keeps
    /// this state.
    fn save(&self, state: &mut StateFile) -> std::io::Result<()>;
    /// The next write must be whole ([`StateStore::save`]): the store keeps
    /// no journal, or none that a record could be appended to now.
    fn wants_whole(&self) -> bool {
        true
    }
    /// The journal has grown past its bound: the next write that can
    /// afford to wait for a whole write (the periodic flush) should be one.
    fn wants_compaction(&self) -> bool {
        false
    }
    /// Saves durably what changed since the last successful `save` or
    /// `save_changes` of this process, or since the state `load` returned
    /// when the store continues the journal it read (`wants_whole` false
    /// before the first write). An error (including "unsupported") means
    /// nothing is promised: the caller's next write is whole.
    fn save_changes(&self, changes: &StateChanges) -> std::io::Result<()> {
        let _ = changes;
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "this store writes whole states only",
        ))
    }
    /// For log lines: where the state lives.
    fn describe(&self) -> String;
}

/// The state as one JSON file written atomically, plus a journal of the
/// changes since (`<path>.journal`, see [`journal`]).
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    /// `<state.path>.lock`, held (flock) while this store lives when made
    /// by [`FileStore::exclusive`]: two processes appending to one journal
    /// would interleave two lives' records.
    _lock: Option<std::fs::File>,
    journal: std::sync::Mutex<journal::Journal>,
    /// Identity of the state file the journal's records apply to (device,
    /// inode): if the file is deleted or replaced while we run, the next
    /// write is whole, not a record nobody would fold.
    base: std::sync::Mutex<Option<(u64, u64)>>,
}

impl FileStore {
    pub fn new(path: impl Into<PathBuf>) -> FileStore {
        let path = path.into();
        let journal = journal::Journal::new(journal_path(&path));
        FileStore {
            path,
            _lock: None,
            journal: std::sync::Mutex::new(journal),
            base: std::sync::Mutex::new(None),
        }
    }

    /// The store the daemon uses: as [`FileStore::new`], holding an
    /// exclusive lock on `<path>.lock` (created if missing, with the
    /// directory) for as long as it lives. Another live process holding it
    /// is an error naming `state.path` and that process; a lock that cannot
    /// be taken for another reason (a read-only directory) is logged and
    /// the store works without it, as before locks existed.
    pub fn exclusive(path: impl Into<PathBuf>) -> Result<FileStore, StateInUse> {
        let mut store = FileStore::new(path);
        let lock_path = lock_path(&store.path);
        match take_lock(&lock_path) {
            Ok(f) => store._lock = Some(f),
            Err(LockFailure::Held(holder)) => {
                return Err(StateInUse {
                    path: store.path.clone(),
                    lock: lock_path,
                    holder,
                })
            }
            Err(LockFailure::Io(e)) => {
                tracing::warn!(lock = %lock_path.display(), error = %e,
                    "cannot lock the state file; nothing stops a second exporter from using the same state.path");
            }
        }
        Ok(store)
    }

    fn base_identity(&self) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(&self.path)
            .ok()
            .filter(|m| m.file_type().is_file())
            .map(|m| (m.dev(), m.ino()))
    }

    fn set_base(&self, id: Option<(u64, u64)>) {
        *self.base.lock().unwrap_or_else(|e| e.into_inner()) = id;
    }

    fn journal(&self) -> std::sync::MutexGuard<'_, journal::Journal> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Another process holds the state lock.
#[derive(Debug, thiserror::Error)]
#[error("state.path {} is in use by another running exporter ({}holding {}); give each exporter its own --state.path, or stop the other one", path.display(), holder.as_deref().map(|h| format!("{h}, ")).unwrap_or_default(), lock.display())]
pub struct StateInUse {
    pub path: PathBuf,
    pub lock: PathBuf,
    /// What the holder wrote in the lock file (`pid N`), if readable.
    pub holder: Option<String>,
}

enum LockFailure {
    Held(Option<String>),
    Io(std::io::Error),
}

/// `<state path>.lock`.
pub fn lock_path(path: &Path) -> PathBuf {
    with_suffix(path, ".lock")
}

fn take_lock(lock_path: &Path) -> Result<std::fs::File, LockFailure> {
    if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(LockFailure::Io)?;
    }
    // Not a regular file (a directory, a fifo): not ours, never opened.
    if std::fs::symlink_metadata(lock_path).is_ok_and(|m| !m.file_type().is_file()) {
        return Err(LockFailure::Io(std::io::Error::other(
            "not a regular file; left alone",
        )));
    }
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path)
        .map_err(LockFailure::Io)?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut f, &mut text);
            let holder = text.lines().next().map(str::trim).filter(|l| {
                !l.is_empty() && l.len() < 64 && l.chars().all(|c| c.is_ascii_graphic() || c == ' ')
            });
            return Err(LockFailure::Held(holder.map(str::to_owned)));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(LockFailure::Io(e)),
    }
    // Who holds it, for the message another process prints.
    let _ = f.set_len(0);
    let _ = writeln!(f, "pid {}", std::process::id());
    Ok(f)
}

/// `<state path>.journal`.
pub fn journal_path(path: &Path) -> PathBuf {
    with_suffix(path, ".journal")
}

impl StateStore for FileStore {
    fn load(&self) -> StateFile {
        let mut state = load_or_default(&self.path);
        let mut j = self.journal();
        match journal::read(j.path(), state.journal_epoch) {
            Ok(r) => {
                if !r.records.is_empty() || r.foreign > 0 || r.torn_bytes > 0 {
                    tracing::info!(
                        journal = %j.path().display(),
                        records = r.records.len(),
                        skipped_older = r.foreign,
                        torn_bytes = r.torn_bytes,
                        "state journal replayed over the state file"
                    );
                }
                let records = r.records.len();
                let mut folder = journal::Folder::new(&mut state);
                for c in r.records {
                    folder.apply(c);
                }
                // The state is what the file and its journal say: this
                // process's writes may go on appending to it, so its first
                // write costs a record, not the whole state.
                let base_len = std::fs::metadata(&self.path).map(|m| m.len());
                if let (Some(at), Ok(base_len)) = (r.appendable_at, base_len) {
                    if j.resume(state.journal_epoch, base_len, at) {
                        tracing::info!(journal = %j.path().display(), records,
                            "state journal continued: writes append to it");
                    }
                }
            }
            Err(e) => {
                if !matches!(e, journal::JournalError::Io { .. }) {
                    j.set_foreign();
                }
                tracing::error!(error = %e, "state journal not used");
            }
        }
        j.epoch = state.journal_epoch;
        drop(j);
        self.set_base(self.base_identity());
        state
    }
    fn save(&self, state: &mut StateFile) -> std::io::Result<()> {
        let mut j = self.journal();
        // A fresh random epoch per whole write: records left in the journal
        // by an earlier base never match this one.
        state.journal_epoch = loop {
            let e: u64 = rand::random();
            if e != 0 && e != j.epoch {
                break e;
            }
        };
        let len = write_atomic(&self.path, state)?;
        self.set_base(self.base_identity());
        if let Err(e) = j.reset(state.journal_epoch, len) {
            // The whole state is on disk; only the next writes are whole too.
            tracing::warn!(journal = %j.path().display(), error = %e,
                "cannot empty the state journal; writing the whole state each time until it can");
        }
        Ok(())
    }
    fn wants_whole(&self) -> bool {
        let base = *self.base.lock().unwrap_or_else(|e| e.into_inner());
        self.journal().wants_whole() || base.is_none() || base != self.base_identity()
    }
    fn wants_compaction(&self) -> bool {
        self.journal().is_heavy()
    }
    fn save_changes(&self, changes: &StateChanges) -> std::io::Result<()> {
        self.journal().append(changes)
    }
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}
