//! Response encodings for `/metrics`: content negotiation between the
//! Prometheus text format 0.0.4 (the default, rendered by
//! `crate::metrics::render`, unchanged) and OpenMetrics 1.0.0 text, and
//! gzip when the scraper accepts it.
//!
//! OpenMetrics is written here from a scrape's snapshot (the exporter's
//! counter families directly, the other families from their gathered
//! `MetricFamily` values; the prometheus crate has no OpenMetrics
//! encoder): counter families are
//! named by their base name (without `_total`) and their samples carry
//! `_total`; histograms give `_bucket` (ending with `+Inf`), `_count` and
//! `_sum`; a family whose name ends in a base unit gets a `# UNIT` line;
//! the exposition ends with `# EOF`.

use std::fmt::Write as _;
use std::io::Write as _;

use flate2::write::GzEncoder;
use flate2::Compression;
use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};

use crate::metrics::snapshot::{FamilyRef, OwnFamily, Snapshot};

/// Content-Type of the OpenMetrics answer.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// gzip level for `/metrics`. The exposition is highly repetitive text:
/// level 1 already shrinks it about tenfold at a fraction of the CPU of the
/// default level, and a scrape of 100k series is compressed on every scrape.
pub const GZIP_LEVEL: u32 = 1;

/// Base units (Prometheus naming conventions) that earn a `# UNIT` line
/// when a family name ends in `_<unit>`.
const UNITS: &[&str] = &["seconds", "bytes", "ratio"];

/// The exposition format a scraper asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Text,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

/// One media range of an `Accept` header: (type/subtype, version param, q).
fn media_ranges(accept: &str) -> impl Iterator<Item = (String, Option<String>, f32)> + '_ {
    accept.split(',').filter_map(|part| {
        let mut params = part.split(';');
        let media = params.next()?.trim().to_ascii_lowercase();
        if media.is_empty() {
            return None;
        }
        let mut q = 1.0f32;
        let mut version = None;
        for p in params {
            let Some((k, v)) = p.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"');
            match k.trim().to_ascii_lowercase().as_str() {
                "q" => q = v.parse().unwrap_or(0.0),
                "version" => version = Some(v.to_owned()),
                _ => {}
            }
        }
        Some((media, version, q))
    })
}

/// Picks the format from an `Accept` header. OpenMetrics only when the
/// scraper prefers it: its best `application/openmetrics-text` range (of a
/// version we write, or no version) has a higher q than any range that
/// accepts the text format, or the same q and comes first. Prometheus sends
/// `application/openmetrics-text;version=1.0.0,…,text/plain;version=0.0.4;q=0.5,*/*;q=0.1`.
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Text;
    };
    let mut best_om: Option<(f32, usize)> = None;
    let mut best_text: Option<(f32, usize)> = None;
    for (i, (media, version, q)) in media_ranges(accept).enumerate() {
        if q <= 0.0 {
            continue;
        }
        let slot = match media.as_str() {
            "application/openmetrics-text" => {
                if !matches!(version.as_deref(), None | Some("1.0.0") | Some("0.0.1")) {
                    continue;
                }
                &mut best_om
            }
            "text/plain" | "text/*" | "*/*" => &mut best_text,
            _ => continue,
        };
        if slot.is_none_or(|(bq, _)| q > bq) {
            *slot = Some((q, i));
        }
    }
    match (best_om, best_text) {
        (Some(_), None) => Format::OpenMetrics,
        (Some((oq, oi)), Some((tq, ti))) if oq > tq || (oq == tq && oi < ti) => Format::OpenMetrics,
        _ => Format::Text,
    }
}

/// True when an `Accept-Encoding` header accepts gzip (`gzip`, `x-gzip` or
/// `*`, with a q above zero; an explicit `gzip;q=0` refuses it).
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let Some(header) = accept_encoding else {
        return false;
    };
    let mut star = None;
    for part in header.split(',') {
        let mut params = part.split(';');
        let coding = params.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = params
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, v)| v.trim().parse::<f32>().unwrap_or(0.0));
        match coding.as_str() {
            "gzip" | "x-gzip" => return q > 0.0,
            "*" => star = Some(q > 0.0),
            _ => {}
        }
    }
    star.unwrap_or(false)
}

/// gzip of `body`.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(body.len() / 8 + 64),
        Compression::new(GZIP_LEVEL),
    );
    enc.write_all(body).expect("writing into a Vec cannot fail");
    enc.finish().expect("writing into a Vec cannot fail")
}

/// Escapes a label value or HELP text (`\`, newline, `"`).
fn escape(out: &mut String, s: &str) {
    if !s.bytes().any(|b| matches!(b, b'\\' | b'\n' | b'"')) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// An OpenMetrics number: `+Inf`, `-Inf`, `NaN`, or Rust's shortest
/// round-trip decimal (never an exponent-free huge integer problem: f64's
/// Display is exact and parseable).
fn number(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

/// A bucket bound in canonical form: integers get `.0` (`le="1.0"`), as
/// the OpenMetrics spec and client_golang write them.
fn bound(v: f64) -> String {
    let mut s = String::new();
    number(&mut s, v);
    if v.is_finite() && !s.contains(['.', 'e', 'E']) {
        s.push_str(".0");
    }
    s
}

fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[LabelPair],
    extra: Option<(&str, &str)>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || extra.is_some() {
        out.push('{');
        let mut first = true;
        let pairs = labels.iter().map(|l| (l.name(), l.value())).chain(extra);
        for (k, v) in pairs {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(k);
            out.push_str("=\"");
            escape(out, v);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    number(out, value);
    out.push('\n');
}

fn metric_samples(out: &mut String, kind: MetricType, name: &str, m: &Metric) {
    let labels = m.get_label();
    match kind {
        MetricType::COUNTER => sample(
            out,
            name,
            "_total",
            labels,
            None,
            m.get_counter().get_value(),
        ),
        MetricType::GAUGE => sample(out, name, "", labels, None, m.get_gauge().get_value()),
        MetricType::HISTOGRAM => {
            let h = m.get_histogram();
            let mut inf_seen = false;
            for b in h.get_bucket() {
                let ub = b.upper_bound();
                inf_seen |= ub.is_infinite() && ub > 0.0;
                sample(
                    out,
                    name,
                    "_bucket",
                    labels,
                    Some(("le", &bound(ub))),
                    b.cumulative_count() as f64,
                );
            }
            if !inf_seen {
                sample(
                    out,
                    name,
                    "_bucket",
                    labels,
                    Some(("le", "+Inf")),
                    h.get_sample_count() as f64,
                );
            }
            sample(
                out,
                name,
                "_count",
                labels,
                None,
                h.get_sample_count() as f64,
            );
            sample(out, name, "_sum", labels, None, h.get_sample_sum());
        }
        MetricType::SUMMARY => {
            let s = m.get_summary();
            for q in s.get_quantile() {
                sample(
                    out,
                    name,
                    "",
                    labels,
                    Some(("quantile", &bound(q.quantile()))),
                    q.value(),
                );
            }
            sample(out, name, "_count", labels, None, s.sample_count() as f64);
            sample(out, name, "_sum", labels, None, s.sample_sum());
        }
        MetricType::UNTYPED => {
            #[allow(deprecated)] // the only accessor plain_model has
            let v = m.get_untyped().get_value();
            sample(out, name, "", labels, None, v);
        }
    }
}

/// `# TYPE`, `# UNIT` and `# HELP` of a family; returns the name samples
/// are written under (a counter's base name, without `_total`).
fn family_header<'a>(out: &mut String, name: &'a str, kind: MetricType, help: &str) -> &'a str {
    let (name, type_name) = match kind {
        MetricType::COUNTER => (name.strip_suffix("_total").unwrap_or(name), "counter"),
        MetricType::GAUGE => (name, "gauge"),
        MetricType::HISTOGRAM => (name, "histogram"),
        MetricType::SUMMARY => (name, "summary"),
        MetricType::UNTYPED => (name, "unknown"),
    };
    let _ = writeln!(out, "# TYPE {name} {type_name}");
    if let Some(unit) = UNITS
        .iter()
        .find(|u| name.strip_suffix(*u).is_some_and(|p| p.ends_with('_')))
    {
        let _ = writeln!(out, "# UNIT {name} {unit}");
    }
    if !help.is_empty() {
        let _ = write!(out, "# HELP {name} ");
        escape(out, help);
        out.push('\n');
    }
    name
}

/// A counter family of the exporter's store, written directly from the
/// snapshot (no intermediate structures).
fn own_counter_family(out: &mut String, f: &OwnFamily) {
    let name = family_header(out, f.name(), MetricType::COUNTER, f.help());
    let names = f.label_names();
    let mut digits = itoa::Buffer::new();
    for (labels, value) in f.series() {
        out.push_str(name);
        out.push_str("_total");
        if !names.is_empty() {
            let mut sep = '{';
            for (k, v) in names.iter().zip(labels) {
                out.push(sep);
                out.push_str(k);
                out.push_str("=\"");
                escape(out, v);
                out.push('"');
                sep = ',';
            }
            out.push('}');
        }
        out.push(' ');
        if value <= 1u64 << 53 {
            out.push_str(digits.format(value));
        } else {
            number(out, value as f64);
        }
        out.push('\n');
    }
}

/// Renders a snapshot as OpenMetrics 1.0.0 text, `# EOF` last.
pub fn openmetrics_snapshot(snapshot: &Snapshot) -> String {
    let mut out = String::with_capacity(snapshot.size_hint());
    for f in snapshot.families() {
        match f {
            FamilyRef::Own(f) => own_counter_family(&mut out, f),
            FamilyRef::Other(mf) => {
                let kind = mf.get_field_type();
                let name = family_header(&mut out, mf.name(), kind, mf.help());
                for m in mf.get_metric() {
                    metric_samples(&mut out, kind, name, m);
                }
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

/// Renders gathered families as OpenMetrics 1.0.0 text, `# EOF` last.
pub fn openmetrics(families: Vec<MetricFamily>) -> String {
    openmetrics_snapshot(&Snapshot::from_families(families))
}

/// Renders the registry as OpenMetrics text.
pub fn render_openmetrics(registry: &prometheus::Registry) -> String {
    openmetrics(registry.gather())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

    #[test]
    fn negotiation_table() {
        let om = Format::OpenMetrics;
        let text = Format::Text;
        let cases: &[(Option<&str>, Format)] = &[
            (None, text),
            (Some("*/*"), text),
            (Some("text/plain"), text),
            (Some("application/openmetrics-text"), om),
            // what Prometheus 2.x sends
            (Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"), om),
            // Prometheus with scrape_protocols preferring text
            (Some("text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.5"), text),
            (Some("application/openmetrics-text;q=0, text/plain"), text),
            (Some("application/openmetrics-text; version=2.0.0"), text),
            (Some("text/plain, application/openmetrics-text"), text),
            (Some("application/openmetrics-text, text/plain"), om),
            (Some("application/json"), text),
        ];
        for (accept, want) in cases {
            assert_eq!(negotiate(*accept), *want, "Accept: {accept:?}");
        }
    }

    #[test]
    fn gzip_acceptance_table() {
        let cases: &[(Option<&str>, bool)] = &[
            (None, false),
            (Some(""), false),
            (Some("gzip"), true),
            (Some("GZIP"), true),
            (Some("deflate, gzip;q=0.5"), true),
            (Some("gzip;q=0"), false),
            (Some("x-gzip"), true),
            (Some("*"), true),
            (Some("*;q=0"), false),
            (Some("br, deflate"), false),
            (Some("gzip;q=0, *"), false),
            (Some("identity"), false),
        ];
        for (h, want) in cases {
            assert_eq!(accepts_gzip(*h), *want, "Accept-Encoding: {h:?}");
        }
    }

    #[test]
    fn gzip_round_trips() {
        let body = "metric_a 1\n".repeat(1000);
        let z = gzip(body.as_bytes());
        assert!(z.len() < body.len() / 10, "{} -> {}", body.len(), z.len());
        let mut d = flate2::read::GzDecoder::new(&z[..]);
        let mut back = String::new();
        std::io::Read::read_to_string(&mut d, &mut back).unwrap();
        assert_eq!(back, body);
    }

    #[test]
    fn openmetrics_structure() {
        let reg = Registry::new();
        let c = IntCounterVec::new(
            Opts::new("demo_events_total", "Events, \"quoted\"\nsecond line"),
            &["cause"],
        )
        .unwrap();
        reg.register(Box::new(c.clone())).unwrap();
        c.with_label_values(&["a\"b\\c"]).inc_by(3);
        let h = HistogramVec::new(
            HistogramOpts::new("demo_call_duration_seconds", "Call time.").buckets(vec![0.5, 1.0]),
            &["op"],
        )
        .unwrap();
        reg.register(Box::new(h.clone())).unwrap();
        h.with_label_values(&["get"]).observe(0.7);
        let g = IntGauge::new("demo_bytes", "Size.").unwrap();
        reg.register(Box::new(g.clone())).unwrap();
        g.set(42);

        let text = render_openmetrics(&reg);
        let want = "\
# TYPE demo_bytes gauge
# UNIT demo_bytes bytes
# HELP demo_bytes Size.
demo_bytes 42
# TYPE demo_call_duration_seconds histogram
# UNIT demo_call_duration_seconds seconds
# HELP demo_call_duration_seconds Call time.
demo_call_duration_seconds_bucket{op=\"get\",le=\"0.5\"} 0
demo_call_duration_seconds_bucket{op=\"get\",le=\"1.0\"} 1
demo_call_duration_seconds_bucket{op=\"get\",le=\"+Inf\"} 1
demo_call_duration_seconds_count{op=\"get\"} 1
demo_call_duration_seconds_sum{op=\"get\"} 0.7
# TYPE demo_events counter
# HELP demo_events Events, \\\"quoted\\\"\\nsecond line
demo_events_total{cause=\"a\\\"b\\\\c\"} 3
# EOF
";
        assert_eq!(text, want, "got:\n{text}");
    }

    #[test]
    fn numbers_and_bounds() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1.0"),
            (0.005, "0.005"),
            (2.5, "2.5"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (10.0, "10.0"),
        ];
        for (v, want) in cases {
            assert_eq!(bound(*v), *want, "{v}");
        }
    }
}

#[cfg(test)]
mod equivalence {
    use std::sync::Arc;

    use prometheus::Registry;

    use crate::metrics::{Limits, Metrics};

    /// OpenMetrics written from a snapshot (counter families directly) is
    /// byte-identical to OpenMetrics written from the gathered families.
    #[test]
    fn openmetrics_from_the_snapshot_matches_the_gathered_families() {
        let reg = Registry::new();
        let m = Arc::new(Metrics::new(&reg, Limits::default()));
        let mut p = crate::pipeline::Pipeline::new(m.clone(), Default::default());
        for e in crate::corpus::mixed(5_000, 7) {
            p.process(&e);
        }
        m.errors
            .with_label_values(&["s-\"q\"", "back\\slash\nnl", "auth", "x"])
            .inc_by(u64::MAX / 3);
        m.api_call_duration
            .with_label_values(&["FilterLogEvents"])
            .observe(0.3);
        let direct = super::openmetrics_snapshot(&m.snapshot());
        let gathered = super::render_openmetrics(&reg);
        assert!(direct.ends_with("# EOF\n"));
        if direct != gathered {
            let first = direct.lines().zip(gathered.lines()).find(|(a, b)| a != b);
            panic!("differ at {first:?}");
        }
    }
}
