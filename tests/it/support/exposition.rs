//! A small parser for the Prometheus text exposition format: enough to read
//! sample values by name and labels in tests.

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// True when every `(name, value)` in `want` is a label of this sample.
    pub fn matches(&self, name: &str, want: &[(&str, &str)]) -> bool {
        self.name == name && want.iter().all(|(k, v)| self.label(k) == Some(v))
    }
}

/// Parses every sample line; panics with the line on a malformed one (our
/// exporter must never produce one).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| parse_line(l).unwrap_or_else(|| panic!("malformed exposition line: {l:?}")))
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name_end, mut rest) = match line.find(['{', ' ']) {
        Some(i) => (i, &line[i..]),
        None => return None,
    };
    let name = line[..name_end].to_owned();
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        let mut key = String::new();
        let end;
        loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => {
                    end = i;
                    break;
                }
                ',' | ' ' => {}
                '=' => {
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        let (_, c) = chars.next()?;
                        match c {
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            '"' => break,
                            c => value.push(c),
                        }
                    }
                    labels.push((std::mem::take(&mut key), value));
                }
                c => key.push(c),
            }
        }
        rest = &r[end + 1..];
    }
    let value_text = rest.split_whitespace().next()?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// The value of the one sample with `name` and (at least) `labels`; `None`
/// when there is none; panics when several match (ask more precisely).
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<Sample> = parse(text)
        .into_iter()
        .filter(|s| s.matches(name, labels))
        .collect();
    match found.len() {
        0 => None,
        1 => Some(found[0].value),
        n => panic!("{n} samples match {name}{labels:?}: {found:?}"),
    }
}

/// The sum over every sample with `name` and (at least) `labels`.
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    parse(text)
        .into_iter()
        .filter(|s| s.matches(name, labels))
        .map(|s| s.value)
        .sum()
}

#[test]
fn parses_labels_with_escapes() {
    let text = "# HELP x y\nx{a=\"1\",b=\"q\\\"x\\\\\"} 3\ny 4.5\n";
    let s = parse(text);
    assert_eq!(s[0].label("b"), Some("q\"x\\"));
    assert_eq!(value(text, "x", &[("a", "1")]), Some(3.0));
    assert_eq!(value(text, "y", &[]), Some(4.5));
}
