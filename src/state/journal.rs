//! The state journal: what changed since the last whole write, appended to
//! `<state.path>.journal` so that a write costs what changed, not the
//! whole state.
//!
//! A whole write ([`super::FileStore`]'s `save`) gives the base file a new
//! random *epoch* and empties the journal; each later write appends one
//! record of the changes since the write before it, stamped with that
//! epoch, and fsyncs. Loading reads the base and folds in, in order, every
//! complete record of the base's epoch:
//! - a record cut short (a crash during the append, before the write was
//!   acknowledged to anyone) ends the journal: it and anything after it
//!   are ignored, so the state is the last durable one;
//! - records of another epoch (a crash after a new base was renamed into
//!   place and before the journal was emptied) are skipped: they describe
//!   an older base.
//!
//! Record layout, after the file's header line ([`MAGIC`]): payload length
//! (u32, little endian), CRC-32 of epoch and payload (u32 LE), epoch (u64
//! LE), payload (a JSON [`StateChanges`]).
//!
//! The journal grows until it outweighs the base (see [`Journal::is_heavy`]);
//! the next periodic flush is then a whole write, which empties it. Each byte of
//! change is therefore written about twice at most, however large the
//! state.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{LastSession, SavedFamily, SavedSeries, StateFile};

/// The first line of every journal: a file without it is not ours.
pub const MAGIC: &[u8] = b"aws-transfer-exporter state journal 1\n";

/// Bytes before each record's payload.
const HEADER: usize = 16;

/// A journal is emptied (by a whole write) once it is larger than this
/// many times the base, and at least [`MIN_COMPACT_BYTES`].
const COMPACT_RATIO: u64 = 2;
const MIN_COMPACT_BYTES: u64 = 8 << 20;

/// What changed since the previous write. Applied in order over the base:
/// - `parts`: a slot's whole new value;
/// - `patches`: a JSON merge patch (RFC 7396) over a slot's value: objects
///   merge key by key, `null` removes a key, anything else replaces;
/// - `last_sessions`: the (server, user) entries that changed;
/// - `counter_families`: the series whose value changed (or are new), with
///   their new values.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateChanges {
    #[serde(default)]
    pub saved_at_ms: i64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parts: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub patches: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_sessions: Vec<LastSession>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counter_families: Vec<SavedFamily>,
}

impl StateChanges {
    /// Nothing changed: no record is needed.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
            && self.last_sessions.is_empty()
            && self.counter_families.is_empty()
            && self
                .patches
                .values()
                .all(|p| p.as_object().is_some_and(|o| o.is_empty()))
    }
}

/// Applies a JSON merge patch (RFC 7396) to `target`.
pub fn merge_patch(target: &mut serde_json::Value, patch: serde_json::Value) {
    match patch {
        serde_json::Value::Object(fields) => {
            if !target.is_object() {
                *target = serde_json::Value::Object(serde_json::Map::new());
            }
            let obj = target.as_object_mut().expect("made an object above");
            for (k, v) in fields {
                if v.is_null() {
                    obj.remove(&k);
                } else {
                    merge_patch(obj.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
        }
        other => *target = other,
    }
}

/// Folds records into a base state, with indexes built once for all of
/// them (a journal may hold many records over 100k counter series).
pub struct Folder<'a> {
    state: &'a mut StateFile,
    families: HashMap<(String, Vec<String>), usize>,
    series: Vec<HashMap<Arc<[Box<str>]>, usize>>,
    sessions: HashMap<(String, String), usize>,
}

impl<'a> Folder<'a> {
    pub fn new(state: &'a mut StateFile) -> Folder<'a> {
        let families = state
            .counter_families
            .iter()
            .enumerate()
            .map(|(i, f)| ((f.name.clone(), f.labels.clone()), i))
            .collect();
        let series = state
            .counter_families
            .iter()
            .map(|f| {
                f.series
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.labels.clone(), i))
                    .collect()
            })
            .collect();
        let sessions = state
            .last_sessions
            .iter()
            .enumerate()
            .map(|(i, s)| ((s.server_id.clone(), s.user.clone()), i))
            .collect();
        Folder {
            state,
            families,
            series,
            sessions,
        }
    }

    pub fn apply(&mut self, changes: StateChanges) {
        self.state.saved_at_ms = self.state.saved_at_ms.max(changes.saved_at_ms);
        for (slot, value) in changes.parts {
            self.state.parts.insert(slot, value);
        }
        for (slot, patch) in changes.patches {
            let target = self
                .state
                .parts
                .entry(slot)
                .or_insert(serde_json::Value::Null);
            merge_patch(target, patch);
        }
        for s in changes.last_sessions {
            let key = (s.server_id.clone(), s.user.clone());
            match self.sessions.get(&key) {
                Some(&i) => self.state.last_sessions[i] = s,
                None => {
                    self.sessions.insert(key, self.state.last_sessions.len());
                    self.state.last_sessions.push(s);
                }
            }
        }
        for f in changes.counter_families {
            let key = (f.name.clone(), f.labels.clone());
            let fi = match self.families.get(&key) {
                Some(&i) => i,
                None => {
                    let i = self.state.counter_families.len();
                    self.families.insert(key, i);
                    self.series.push(HashMap::new());
                    self.state.counter_families.push(SavedFamily {
                        name: f.name,
                        labels: f.labels,
                        series: Vec::new(),
                    });
                    self.apply_series(i, f.series);
                    continue;
                }
            };
            self.apply_series(fi, f.series);
        }
    }

    fn apply_series(&mut self, fi: usize, rows: Vec<SavedSeries>) {
        let family = &mut self.state.counter_families[fi];
        let index = &mut self.series[fi];
        for row in rows {
            match index.get(&row.labels) {
                Some(&i) => family.series[i].value = row.value,
                None => {
                    index.insert(row.labels.clone(), family.series.len());
                    family.series.push(row);
                }
            }
        }
    }
}

/// What loading a journal found.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Records of the base's epoch, in order.
    pub records: Vec<StateChanges>,
    /// Records of another epoch, skipped.
    pub foreign: usize,
    /// Bytes after the last complete record (a torn append), ignored.
    pub torn_bytes: usize,
    /// The journal's length when a record appended now would be read by
    /// the next load: the file holds the whole header and ends exactly at
    /// a record's end. `None` for a missing journal, a header cut short
    /// (an emptying interrupted by a crash) or a torn tail: the first write
    /// is then whole, which empties the journal.
    pub appendable_at: Option<u64>,
}

/// Why a journal is not used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path} is not a state journal of this exporter (it does not start with its header); it is left alone and every state write rewrites the whole state file")]
    NotOurs { path: PathBuf },
    #[error("{path} is not a regular file; it is left alone and every state write rewrites the whole state file")]
    NotAFile { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Reads the journal at `path` for a base of `epoch`. A missing journal is
/// an empty one.
pub fn read(path: &Path, epoch: u64) -> Result<Replayed, JournalError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Replayed::default()),
        Err(e) => {
            return Err(JournalError::Io {
                path: path.to_owned(),
                source: e,
            })
        }
        Ok(m) if !m.file_type().is_file() => {
            return Err(JournalError::NotAFile {
                path: path.to_owned(),
            })
        }
        Ok(_) => {}
    }
    let bytes = std::fs::read(path).map_err(|e| JournalError::Io {
        path: path.to_owned(),
        source: e,
    })?;
    if !is_ours(&bytes) {
        return Err(JournalError::NotOurs {
            path: path.to_owned(),
        });
    }
    let mut r = parse(bytes.get(MAGIC.len()..).unwrap_or_default(), epoch);
    if bytes.starts_with(MAGIC) && r.torn_bytes == 0 {
        r.appendable_at = Some(bytes.len() as u64);
    }
    Ok(r)
}

/// Our header, or a prefix of it (an emptying cut short by a crash).
fn is_ours(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC) || MAGIC.starts_with(bytes)
}

/// Records of `epoch` in `body` (the bytes after the header), up to the
/// first incomplete or damaged one.
pub fn parse(body: &[u8], epoch: u64) -> Replayed {
    let mut out = Replayed::default();
    let mut at = 0;
    while at < body.len() {
        let rest = &body[at..];
        let Some(header) = rest.get(..HEADER) else {
            break;
        };
        let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let Some(framed) = rest.get(8..HEADER + len) else {
            break;
        };
        if crc32fast::hash(framed) != crc {
            break;
        }
        let record_epoch = u64::from_le_bytes(framed[..8].try_into().expect("8 bytes"));
        if record_epoch == epoch {
            match serde_json::from_slice::<StateChanges>(&framed[8..]) {
                Ok(c) => out.records.push(c),
                // A record whose checksum holds but that we cannot read was
                // written by another version: stop here, as for a torn one.
                Err(_) => break,
            }
        } else {
            out.foreign += 1;
        }
        at += HEADER + len;
    }
    out.torn_bytes = body.len() - at;
    out
}

/// One record's bytes.
pub fn frame(epoch: u64, changes: &StateChanges) -> std::io::Result<Vec<u8>> {
    let payload = serde_json::to_vec(changes)?;
    let len = u32::try_from(payload.len())
        .map_err(|_| std::io::Error::other("a state journal record over 4 GiB"))?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(&payload);
    let crc = crc32fast::hash(&out[8..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// The journal of one state file, as the store keeps it between writes.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    /// The epoch of the base on disk (0: none written or loaded).
    pub epoch: u64,
    /// The path holds something that is not ours: never touched.
    foreign: bool,
    /// Open for appending: a whole write in this process emptied the
    /// journal, and nothing failed since. `None`: appending is not allowed.
    file: Option<File>,
    len: u64,
    base_len: u64,
}

impl Journal {
    pub fn new(path: PathBuf) -> Journal {
        Journal {
            path,
            epoch: 0,
            foreign: false,
            file: None,
            len: 0,
            base_len: 0,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The journal path holds something that is not ours: never write it.
    pub fn set_foreign(&mut self) {
        self.foreign = true;
        self.file = None;
    }

    /// The next write must be a whole one: no journal ready in this
    /// process (none emptied by a whole write yet, or a write failed).
    pub fn wants_whole(&self) -> bool {
        self.file.is_none()
    }

    /// The journal outweighs the base: a whole write should fold it in.
    pub fn is_heavy(&self) -> bool {
        self.file.is_some() && self.len > (COMPACT_RATIO * self.base_len).max(MIN_COMPACT_BYTES)
    }

    /// A whole base of `epoch` and `base_len` bytes is on disk: empty the
    /// journal for records of that epoch. On failure the journal is not
    /// used until the next whole write succeeds in emptying it (records of
    /// the old epoch left in it are skipped when loading).
    pub fn reset(&mut self, epoch: u64, base_len: u64) -> std::io::Result<()> {
        self.epoch = epoch;
        self.base_len = base_len;
        self.file = None;
        if self.foreign {
            return Ok(());
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&self.path)?;
        f.write_all(MAGIC)?;
        f.sync_data()?;
        // A journal created just now survives a power loss only once its
        // directory entry does.
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()?;
        self.len = MAGIC.len() as u64;
        self.file = Some(f);
        Ok(())
    }

    /// Continues the journal a load has just read (see
    /// [`Replayed::appendable_at`]) for the base of `epoch` and `base_len`
    /// bytes it was read for: the next records are appended after the
    /// ones read, and a process's first write need not be whole. False
    /// (nothing changed) when the journal is not ours or its length is no
    /// longer what was read.
    pub fn resume(&mut self, epoch: u64, base_len: u64, len: u64) -> bool {
        if self.foreign || epoch == 0 {
            return false;
        }
        let Ok(f) = OpenOptions::new().append(true).open(&self.path) else {
            return false;
        };
        if !f
            .metadata()
            .is_ok_and(|m| m.file_type().is_file() && m.len() == len)
        {
            return false;
        }
        self.epoch = epoch;
        self.base_len = base_len;
        self.len = len;
        self.file = Some(f);
        true
    }

    /// Appends one record durably. On failure the journal is not used
    /// until the next whole write.
    pub fn append(&mut self, changes: &StateChanges) -> std::io::Result<()> {
        let result = (|| {
            let Some(file) = &mut self.file else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "no state journal ready (a whole write comes first)",
                ));
            };
            let bytes = frame(self.epoch, changes)?;
            file.write_all(&bytes)?;
            file.sync_data()?;
            Ok(bytes.len() as u64)
        })();
        match result {
            Ok(n) => {
                self.len += n;
                Ok(())
            }
            Err(e) => {
                self.file = None;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(n: u64) -> StateChanges {
        let mut c = StateChanges {
            saved_at_ms: n as i64,
            ..StateChanges::default()
        };
        c.patches
            .insert("p".into(), serde_json::json!({ format!("k{n}"): n }));
        c
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut v = serde_json::json!({"a": {"b": 1, "c": 2}, "d": [1], "e": "x"});
        merge_patch(
            &mut v,
            serde_json::json!({"a": {"b": null, "z": 3}, "d": [2, 3], "f": {"g": 1}}),
        );
        assert_eq!(
            v,
            serde_json::json!({"a": {"c": 2, "z": 3}, "d": [2, 3], "e": "x", "f": {"g": 1}})
        );
        merge_patch(&mut v, serde_json::json!(7));
        assert_eq!(v, serde_json::json!(7));
    }

    /// Records of the base's epoch are read in order; a record of another
    /// epoch is skipped; a torn or damaged tail ends the journal.
    #[test]
    fn records_torn_tails_and_foreign_epochs() {
        let mut body = Vec::new();
        body.extend(frame(7, &changes(1)).unwrap());
        body.extend(frame(6, &changes(2)).unwrap());
        body.extend(frame(7, &changes(3)).unwrap());
        let whole = parse(&body, 7);
        assert_eq!(whole.records, vec![changes(1), changes(3)]);
        assert_eq!((whole.foreign, whole.torn_bytes), (1, 0));
        // Every cut inside the last record keeps exactly the first two.
        let last = frame(7, &changes(4)).unwrap();
        for cut in 0..last.len() {
            let mut b = body.clone();
            b.extend_from_slice(&last[..cut]);
            let r = parse(&b, 7);
            assert_eq!(r.records.len(), 2, "cut at {cut}");
            assert_eq!(r.torn_bytes, cut);
        }
        // A flipped byte in the second record ends the journal there.
        let mut b = body.clone();
        let second = frame(7, &changes(1)).unwrap().len();
        b[second + HEADER + 3] ^= 0x20;
        assert_eq!(parse(&b, 7).records, vec![changes(1)]);
    }

    #[test]
    fn a_journal_is_emptied_by_a_whole_write_and_appends_only_after_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json.journal");
        let mut j = Journal::new(path.clone());
        assert!(j.wants_whole());
        assert!(j.append(&changes(1)).is_err(), "no whole write yet");
        assert!(!path.exists(), "nothing created before a whole write");
        j.reset(11, 100).unwrap();
        j.append(&changes(1)).unwrap();
        j.append(&changes(2)).unwrap();
        assert!(!j.wants_whole());
        assert_eq!(
            read(&path, 11).unwrap().records,
            vec![changes(1), changes(2)]
        );
        assert!(read(&path, 12).unwrap().records.is_empty());
        j.reset(12, 100).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), MAGIC);
    }

    /// Once the journal outweighs the base (and the minimum), it asks to be
    /// folded in (and still takes records until it is).
    #[test]
    fn a_journal_heavier_than_its_base_asks_for_a_whole_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::new(dir.path().join("j"));
        j.reset(1, 5 << 20).unwrap();
        let mut big = StateChanges::default();
        big.parts
            .insert("x".into(), serde_json::json!("y".repeat(1 << 20)));
        let mut appended = 0;
        while !j.is_heavy() {
            j.append(&big).unwrap();
            appended += 1;
        }
        assert_eq!(appended, 10, "just past twice the 5 MiB base");
    }

    #[test]
    fn a_file_that_is_not_a_journal_is_reported_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json.journal");
        std::fs::write(&path, "somebody else's notes\n").unwrap();
        assert!(matches!(read(&path, 1), Err(JournalError::NotOurs { .. })));
        let mut j = Journal::new(path.clone());
        j.set_foreign();
        j.reset(1, 10).unwrap();
        assert!(j.wants_whole());
        assert!(j.append(&changes(1)).is_err());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "somebody else's notes\n"
        );
        let sub = dir.path().join("d.journal");
        std::fs::create_dir(&sub).unwrap();
        assert!(matches!(read(&sub, 1), Err(JournalError::NotAFile { .. })));
        // Empty, or a header cut short, is ours (an emptying cut short).
        std::fs::write(&path, &MAGIC[..5]).unwrap();
        assert!(read(&path, 1).unwrap().records.is_empty());
    }

    #[test]
    fn folding_upserts_counters_and_sessions_and_patches_parts() {
        let mut base = StateFile::default();
        base.parts
            .insert("cw".into(), serde_json::json!({"t": {"g1": {"n": 1}}}));
        base.counter_families.push(SavedFamily {
            name: "a_total".into(),
            labels: vec!["x".into()],
            series: vec![SavedSeries {
                value: 1,
                labels: vec![Box::<str>::from("one")].into(),
            }],
        });
        let row = |v: u64, l: &str| SavedSeries {
            value: v,
            labels: vec![Box::<str>::from(l)].into(),
        };
        let mut c = StateChanges::default();
        c.patches.insert(
            "cw".into(),
            serde_json::json!({"t": {"g1": {"n": 2}, "g2": {"n": 1}}}),
        );
        c.parts.insert("fh".into(), serde_json::json!([1, 2]));
        c.counter_families.push(SavedFamily {
            name: "a_total".into(),
            labels: vec!["x".into()],
            series: vec![row(5, "one"), row(2, "two")],
        });
        c.counter_families.push(SavedFamily {
            name: "b_total".into(),
            labels: vec![],
            series: vec![SavedSeries {
                value: 9,
                labels: Vec::<Box<str>>::new().into(),
            }],
        });
        let session = |ts: f64| LastSession {
            server_id: "s".into(),
            user: "u".into(),
            timestamp_seconds: ts,
        };
        c.last_sessions.push(session(1.0));
        let mut c2 = StateChanges::default();
        c2.last_sessions.push(session(2.0));
        c2.counter_families.push(SavedFamily {
            name: "a_total".into(),
            labels: vec!["x".into()],
            series: vec![row(6, "one")],
        });
        let mut folder = Folder::new(&mut base);
        folder.apply(c);
        folder.apply(c2);
        assert_eq!(
            base.parts["cw"],
            serde_json::json!({"t": {"g1": {"n": 2}, "g2": {"n": 1}}})
        );
        assert_eq!(base.parts["fh"], serde_json::json!([1, 2]));
        assert_eq!(base.last_sessions, vec![session(2.0)]);
        assert_eq!(
            base.counter_families[0].series,
            vec![row(6, "one"), row(2, "two")]
        );
        assert_eq!(base.counter_families[1].name, "b_total");
        assert_eq!(base.counter_families[1].series[0].value, 9);
    }
}
