//! One scrape's view of every metric family, taken at one instant: the
//! exporter's own counter families copied from the store (labels shared,
//! values copied) and every other family of the registry gathered by the
//! `prometheus` crate (gauges, histograms, other sources' families; few
//! series). The same snapshot is saved to the state file and served, so
//! the state on disk is exactly what the answer shows.
//!
//! Encoding is direct: the text format 0.0.4 here ([`Snapshot::text`],
//! byte-identical to the `prometheus` crate's `TextEncoder`: families
//! sorted by name, series by label values, labels by name), OpenMetrics in
//! `crate::web::encode`. Taking the snapshot is split in two so the part
//! that runs with counting paused is only the copy ([`Metrics::copy_values`]):
//! sorting and encoding run after counting has resumed.

use std::sync::Arc;

use prometheus::proto::MetricFamily;
use prometheus::Encoder as _;

use super::store::{Copied, Family, LabelValues};
use crate::state::{SavedFamily, SavedSeries};

/// The counter families' values as copied (insertion order), plus the
/// other families gathered at the same instant; [`Copy::finish`] orders it.
pub struct Copy {
    own: Vec<(Arc<Family>, Copied)>,
    others: Vec<MetricFamily>,
}

impl Copy {
    pub(crate) fn new(own: Vec<(Arc<Family>, Copied)>, others: Vec<MetricFamily>) -> Copy {
        Copy { own, others }
    }

    /// Sorts the series into exposition order (from each family's cached
    /// order: only series new since the last scrape are sorted).
    pub fn finish(self) -> Snapshot {
        let mut own: Vec<OwnFamily> = self
            .own
            .into_iter()
            .filter(|(_, c)| !c.series.is_empty())
            .map(|(family, copied)| {
                let order = family.order(&copied);
                OwnFamily {
                    family,
                    series: copied.series,
                    order,
                }
            })
            .collect();
        own.sort_by(|a, b| a.family.name.cmp(&b.family.name));
        Snapshot {
            own,
            others: self.others,
        }
    }
}

/// A counter family of the store in a snapshot.
pub struct OwnFamily {
    family: Arc<Family>,
    series: Vec<(LabelValues, u64)>,
    /// Indexes of `series` in exposition order.
    order: Arc<[u32]>,
}

impl OwnFamily {
    pub fn name(&self) -> &str {
        &self.family.name
    }
    pub fn help(&self) -> &str {
        &self.family.help
    }
    /// Label names, sorted (the exposition's order).
    pub fn label_names(&self) -> &[Box<str>] {
        &self.family.sorted_names
    }
    /// Series in exposition order: label values (in the order of
    /// [`Self::label_names`]) and value.
    pub fn series(&self) -> impl Iterator<Item = (&[Box<str>], u64)> + '_ {
        self.order.iter().map(|&i| {
            let (l, v) = &self.series[i as usize];
            (&**l, *v)
        })
    }
    pub fn len(&self) -> usize {
        self.series.len()
    }
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

/// A family of a snapshot, in exposition order.
pub enum FamilyRef<'a> {
    /// A counter family of the exporter's store.
    Own(&'a OwnFamily),
    /// Anything else, as the `prometheus` crate gathered it.
    Other(&'a MetricFamily),
}

/// Every family at one instant, ready to save and to encode.
pub struct Snapshot {
    own: Vec<OwnFamily>,
    others: Vec<MetricFamily>,
}

impl Snapshot {
    /// A snapshot of gathered families only (a registry without a store).
    pub fn from_families(families: Vec<MetricFamily>) -> Snapshot {
        Snapshot {
            own: Vec::new(),
            others: families,
        }
    }

    /// Families sorted by name (as `Registry::gather` sorts them).
    pub fn families(&self) -> impl Iterator<Item = FamilyRef<'_>> + '_ {
        let mut own = self.own.iter().peekable();
        let mut others = self.others.iter().peekable();
        std::iter::from_fn(move || match (own.peek(), others.peek()) {
            (Some(a), Some(b)) if a.name() <= b.name() => own.next().map(FamilyRef::Own),
            (_, Some(_)) => others.next().map(FamilyRef::Other),
            (Some(_), None) => own.next().map(FamilyRef::Own),
            (None, None) => None,
        })
    }

    /// Series in the snapshot (histograms count one per label set).
    pub fn series_count(&self) -> usize {
        self.own.iter().map(OwnFamily::len).sum::<usize>()
            + self
                .others
                .iter()
                .map(|f| f.get_metric().len())
                .sum::<usize>()
    }

    /// The text exposition format 0.0.4, byte for byte what the
    /// `prometheus` crate's `TextEncoder` writes for the same families.
    pub fn text(&self) -> String {
        let mut out = Vec::with_capacity(self.size_hint());
        for f in self.families() {
            match f {
                FamilyRef::Own(f) => text_family(&mut out, f),
                FamilyRef::Other(mf) => prometheus::TextEncoder::new()
                    .encode(std::slice::from_ref(mf), &mut out)
                    .expect("text encoding into a Vec cannot fail"),
            }
        }
        String::from_utf8(out).expect("exposition is UTF-8")
    }

    /// A guess at the exposition size, to allocate once.
    pub fn size_hint(&self) -> usize {
        let own: usize = self
            .own
            .iter()
            .map(|f| {
                let per = f.name().len()
                    + f.label_names().iter().map(|n| n.len() + 4).sum::<usize>()
                    + f.series
                        .first()
                        .map_or(0, |(l, _)| l.iter().map(|v| v.len()).sum())
                    + 16;
                per * f.len() + f.help().len() + 64
            })
            .sum();
        own + 256 * self.others.len() + 4096
    }

    /// Every counter series, as the state file keeps them: the store's
    /// families and any other counter family of the registry.
    pub fn saved_counters(&self) -> Vec<SavedFamily> {
        let mut out = Vec::new();
        for f in self.families() {
            match f {
                FamilyRef::Own(f) => out.push(SavedFamily {
                    name: f.name().to_owned(),
                    labels: f.label_names().iter().map(|n| n.to_string()).collect(),
                    series: f
                        .series
                        .iter()
                        .map(|(labels, value)| SavedSeries {
                            value: *value,
                            labels: labels.clone(),
                        })
                        .collect(),
                }),
                FamilyRef::Other(mf) => {
                    if mf.get_field_type() != prometheus::proto::MetricType::COUNTER {
                        continue;
                    }
                    let Some(first) = mf.get_metric().first() else {
                        continue;
                    };
                    out.push(SavedFamily {
                        name: mf.name().to_owned(),
                        labels: first
                            .get_label()
                            .iter()
                            .map(|l| l.name().to_owned())
                            .collect(),
                        series: mf
                            .get_metric()
                            .iter()
                            .map(|m| SavedSeries {
                                value: counter_value(m.get_counter().get_value()),
                                labels: m.get_label().iter().map(|l| l.value().into()).collect(),
                            })
                            .collect(),
                    });
                }
            }
        }
        out
    }
}

/// A gathered counter value as an integer (every counter here counts whole
/// things; anything else saves as 0 rather than fail the write).
fn counter_value(v: f64) -> u64 {
    if v.is_finite() && v >= 0.0 {
        v as u64
    } else {
        0
    }
}

/// Writes `s` escaped as the text format escapes label values (`\`,
/// newline, `"`) or HELP text (`\`, newline).
fn escape_into(out: &mut Vec<u8>, s: &str, quote: bool) {
    let special = |b: u8| b == b'\\' || b == b'\n' || (quote && b == b'"');
    if !s.bytes().any(special) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    for b in s.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'"' if quote => out.extend_from_slice(b"\\\""),
            b => out.push(b),
        }
    }
}

/// A counter value as the text encoder writes it: `(v as f64).to_string()`,
/// which for every integer below 2^53 is the integer's digits.
fn write_counter_value(out: &mut Vec<u8>, v: u64) {
    if v <= (1u64 << 53) {
        out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    } else {
        out.extend_from_slice((v as f64).to_string().as_bytes());
    }
}

/// `{a="x",b="y"}` (nothing when there are no labels).
fn write_labels(out: &mut Vec<u8>, names: &[Box<str>], values: &[Box<str>]) {
    if names.is_empty() {
        return;
    }
    let mut sep = b'{';
    for (n, v) in names.iter().zip(values) {
        out.push(sep);
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b"=\"");
        escape_into(out, v, true);
        out.push(b'"');
        sep = b',';
    }
    out.push(b'}');
}

fn text_family(out: &mut Vec<u8>, f: &OwnFamily) {
    let name = f.name().as_bytes();
    if !f.help().is_empty() {
        out.extend_from_slice(b"# HELP ");
        out.extend_from_slice(name);
        out.push(b' ');
        escape_into(out, f.help(), false);
        out.push(b'\n');
    }
    out.extend_from_slice(b"# TYPE ");
    out.extend_from_slice(name);
    out.extend_from_slice(b" counter\n");
    let names = f.label_names();
    for (labels, value) in f.series() {
        out.extend_from_slice(name);
        write_labels(out, names, labels);
        out.push(b' ');
        write_counter_value(out, value);
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use prometheus::Registry;

    use crate::metrics::{render, Limits, Metrics};

    /// Metrics after the realistic corpus, plus label values that need
    /// escaping and values beyond 2^53 (written straight into the families,
    /// past the label guard, to reach the encoder as they are).
    fn busy_metrics() -> (Registry, Arc<Metrics>) {
        let reg = Registry::new();
        let m = Arc::new(Metrics::new(&reg, Limits::default()));
        let mut p = crate::pipeline::Pipeline::new(m.clone(), Default::default());
        for e in crate::corpus::mixed(5_000, 7) {
            p.process(&e);
        }
        m.errors
            .with_label_values(&["s-\"q\"", "back\\slash\nnl", "auth", "x"])
            .inc();
        m.errors
            .with_label_values(&["s-ü", "", "auth", "y"])
            .inc_by(u64::MAX / 3);
        m.errors
            .with_label_values(&["s-1", "two53", "auth", "z"])
            .inc_by((1 << 53) + 1);
        m.events.with_label_values(&["s-1", "CONNECTED"]).inc();
        m.api_call_duration
            .with_label_values(&["FilterLogEvents"])
            .observe(0.3);
        m.log_groups.set(3);
        (reg, m)
    }

    /// The direct encoder writes exactly what the prometheus crate's
    /// gather + TextEncoder writes for the same families (the golden file
    /// pins the latter).
    #[test]
    fn direct_text_is_byte_identical_to_the_prometheus_encoder() {
        let (reg, m) = busy_metrics();
        let direct = m.snapshot().text();
        let reference = render(&reg);
        assert!(direct.contains("user=\"back\\\\slash\\nnl\""), "{direct}");
        if direct != reference {
            let first = direct.lines().zip(reference.lines()).find(|(a, b)| a != b);
            panic!("differ at {first:?}");
        }
    }

    /// What the state saves is what the text shows, series for series.
    #[test]
    fn saved_counters_match_the_served_counters() {
        let (_reg, m) = busy_metrics();
        let snap = m.snapshot();
        let text = snap.text();
        let saved = snap.saved_counters();
        let mut n = 0;
        for f in &saved {
            for s in f.series.iter() {
                n += 1;
                let line_start = format!("{}{{", f.name);
                let want: Vec<String> = f
                    .labels
                    .iter()
                    .zip(s.labels.iter())
                    .map(|(k, v)| {
                        format!(
                            "{k}=\"{}\"",
                            v.replace('\\', "\\\\")
                                .replace('\n', "\\n")
                                .replace('"', "\\\"")
                        )
                    })
                    .collect();
                let line = format!("{line_start}{}}} ", want.join(","));
                assert!(
                    text.lines().any(|l| l.starts_with(&line)
                        && l[line.len()..].parse::<f64>() == Ok(s.value as f64)),
                    "{line}{} not served",
                    s.value
                );
            }
        }
        let served = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                saved
                    .iter()
                    .any(|f| l.starts_with(&format!("{}{{", f.name)))
            })
            .count();
        assert_eq!(n, served);
    }
}
