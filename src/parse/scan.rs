//! The fast path of JSON parsing: a strict scanner for the part of JSON that
//! Transfer Family writes, handing each top-level key and its value to a
//! callback without building anything.
//!
//! It accepts only what it can vouch for: one object, keys without escapes,
//! strings without control characters (escapes are checked and reported,
//! [`unescape`] decodes them), scalars, and nested values it checks and
//! skips (at most [`MAX_DEPTH`] deep). Whatever it meets outside
//! that subset (an escape, a malformed token, trailing text, a value the
//! callback declines) makes it answer `None`, and the caller parses the
//! message with `serde_json` instead, which decides validity and reads
//! everything else. So a `Some` is always an input `serde_json` accepts, and
//! the values reported are the ones it would produce; the table tests and
//! proptests in [`super::json`] compare the two paths on every kind of input.
//!
//! Why: messages are small (≈ 250 bytes), mostly flat objects of plain
//! strings, and classification reads a handful of keys. A typed `serde`
//! visitor pays per byte and per key for generality this input never uses;
//! this scanner finds string ends with `memchr` and compares keys once.

/// Nesting deeper than this is left to `serde_json` (which has its own
/// limit); real messages nest two levels at most.
pub const MAX_DEPTH: usize = 32;

/// A top-level value, as the scanner reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// A string without escapes: its text, quotes excluded.
    Str(&'a str),
    /// A string with escapes (checked against the grammar): its text as
    /// written, quotes excluded; [`unescape`] decodes it.
    Escaped(&'a str),
    /// A non-negative integer of at most 19 digits, as written (no sign,
    /// no leading zero, no fraction or exponent): the text `serde_json`'s
    /// `u64` would print back.
    Int(&'a str),
    /// `true` or `false`, as written.
    Bool(&'a str),
    Null,
    /// Any other number (negative, fractional, exponent, or long): checked
    /// against the JSON grammar, not interpreted.
    OtherNumber,
    /// An object or an array: checked and skipped; the raw text.
    Nested(&'a str),
}

/// Decodes the text of a [`Value::Escaped`] string into `out` (appended).
/// `None` for a lone UTF-16 surrogate (`\ud800` without its pair), which
/// `serde_json` rejects in a string.
pub fn unescape(raw: &str, out: &mut String) -> Option<()> {
    let mut rest = raw;
    while let Some(i) = memchr::memchr(b'\\', rest.as_bytes()) {
        out.push_str(&rest[..i]);
        let b = rest.as_bytes();
        let (c, len) = match *b.get(i + 1)? {
            b'"' => ('"', 2),
            b'\\' => ('\\', 2),
            b'/' => ('/', 2),
            b'b' => ('\u{8}', 2),
            b'f' => ('\u{c}', 2),
            b'n' => ('\n', 2),
            b'r' => ('\r', 2),
            b't' => ('\t', 2),
            b'u' => {
                let hi = hex4(b.get(i + 2..i + 6)?)?;
                match hi {
                    0xD800..=0xDBFF => {
                        if b.get(i + 6..i + 8)? != b"\\u" {
                            return None;
                        }
                        let lo = hex4(b.get(i + 8..i + 12)?)?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return None;
                        }
                        let c =
                            0x1_0000 + ((u32::from(hi) - 0xD800) << 10) + (u32::from(lo) - 0xDC00);
                        (char::from_u32(c)?, 12)
                    }
                    0xDC00..=0xDFFF => return None,
                    _ => (char::from_u32(u32::from(hi))?, 6),
                }
            }
            _ => return None,
        };
        out.push(c);
        rest = &rest[i + len..];
    }
    out.push_str(rest);
    Some(())
}

fn hex4(b: &[u8]) -> Option<u16> {
    let mut n = 0u16;
    for &c in b {
        let d = (c as char).to_digit(16)?;
        n = n << 4 | d as u16;
    }
    Some(n)
}

/// Whether `b` holds a byte below 0x20, eight bytes at a time.
fn has_control(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = b.chunks_exact(8);
    // Some byte is below 0x20 exactly when this is not zero (the "has a
    // byte less than n" test, exact for n <= 128).
    let any = chunks.by_ref().fold(0, |acc, c| {
        let v = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        acc | (v.wrapping_sub(ONES * 0x20) & !v & HIGH)
    });
    any != 0 || chunks.remainder().iter().any(|&c| c < 0x20)
}

/// Position of the first `"` or `\` in `b`. Strings here are short (a
/// dozen bytes): eight bytes at a time in a register beats a call into
/// `memchr`'s vector code, whose set-up costs more than the search.
#[inline(always)]
fn quote_or_backslash(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // High bit of each byte that is zero (exact for the lowest such byte,
    // which is the only one used).
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let v = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let hit = zero(v ^ (ONES * u64::from(b'"'))) | zero(v ^ (ONES * u64::from(b'\\')));
        if hit != 0 {
            return Some(i + (hit.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\')
        .map(|j| i + j)
}

/// Scans `s`, which must hold exactly one JSON object (and whitespace), and
/// calls `field(key, value)` for each of its top-level members in order.
/// `field` returns `false` to give up. `None` when the scanner gave up or
/// cannot vouch for the input (see the module docs).
pub fn object<'a>(s: &'a str, mut field: impl FnMut(&'a str, Value<'a>) -> bool) -> Option<()> {
    // One pass over the whole message instead of one per string: compact
    // JSON holds no byte below 0x20 at all.
    let controls = has_control(s.as_bytes());
    let mut c = Cursor { s, i: 0, controls };
    c.ws();
    c.eat(b'{')?;
    c.ws();
    if c.peek() == Some(b'}') {
        c.i += 1;
    } else {
        loop {
            c.eat(b'"')?;
            let Value::Str(key) = c.string_body()? else {
                return None;
            };
            c.ws();
            c.eat(b':')?;
            c.ws();
            let value = c.value()?;
            if !field(key, value) {
                return None;
            }
            c.ws();
            match c.next()? {
                b',' => c.ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    c.ws();
    (c.i == s.len()).then_some(())
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
    /// Whether `s` holds any byte below 0x20 (whitespace or not); if not,
    /// strings need no check for control characters.
    controls: bool,
}

impl<'a> Cursor<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.s.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        Some(b)
    }

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// JSON whitespace (exactly the four bytes RFC 8259 allows).
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// After an opening quote: the string up to the closing quote, which is
    /// consumed. `None` at a malformed escape, a control character or the
    /// end of input.
    ///
    /// Inlined: it runs for every key and most values, and the common
    /// string (no escape) is a search and a check; strings with escapes
    /// take the out-of-line [`Self::escaped_string`].
    #[inline(always)]
    fn string_body(&mut self) -> Option<Value<'a>> {
        let b = self.bytes();
        let start = self.i;
        let at = start + quote_or_backslash(b.get(start..)?)?;
        if b[at] != b'"' {
            return self.escaped_string(start, at);
        }
        if self.controls && b[start..at].iter().any(|&c| c < 0x20) {
            return None;
        }
        self.i = at + 1;
        // Both ends sit next to an ASCII quote, so this is a char boundary.
        Some(Value::Str(&self.s[start..at]))
    }

    /// [`Self::string_body`] from the first backslash at `at` of a string
    /// starting at `start`.
    #[cold]
    #[inline(never)]
    fn escaped_string(&mut self, start: usize, mut at: usize) -> Option<Value<'a>> {
        let b = self.bytes();
        let end = loop {
            if b[at] == b'"' {
                break at;
            }
            at += match b.get(at + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                b'u' if b.get(at + 2..at + 6)?.iter().all(u8::is_ascii_hexdigit) => 6,
                _ => return None,
            };
            at += quote_or_backslash(b.get(at..)?)?;
        };
        if self.controls && b[start..end].iter().any(|&c| c < 0x20) {
            return None;
        }
        self.i = end + 1;
        Some(Value::Escaped(&self.s[start..end]))
    }

    fn literal(&mut self, word: &'static str) -> Option<&'a str> {
        let start = self.i;
        self.s[start..].starts_with(word).then(|| {
            self.i += word.len();
            &self.s[start..self.i]
        })
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    /// A number by the JSON grammar (the one `serde_json` checks).
    fn number(&mut self) -> Option<Value<'a>> {
        let start = self.i;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        let int_start = self.i;
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        let int_len = self.i - int_start;
        let mut plain = !negative && int_len <= 19;
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
            plain = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
            plain = false;
        }
        Some(if plain {
            Value::Int(&self.s[start..self.i])
        } else {
            Value::OtherNumber
        })
    }

    /// A value starting at the cursor. Inlined for the common string;
    /// the rest is [`Self::other_value`].
    #[inline(always)]
    fn value(&mut self) -> Option<Value<'a>> {
        if self.peek()? == b'"' {
            self.i += 1;
            return self.string_body();
        }
        self.other_value()
    }

    #[inline(never)]
    fn other_value(&mut self) -> Option<Value<'a>> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                self.string_body()
            }
            b't' => self.literal("true").map(Value::Bool),
            b'f' => self.literal("false").map(Value::Bool),
            b'n' => self.literal("null").map(|_| Value::Null),
            b'-' | b'0'..=b'9' => self.number(),
            b'{' | b'[' => {
                let start = self.i;
                self.skip_nested(0)?;
                Some(Value::Nested(&self.s[start..self.i]))
            }
            _ => None,
        }
    }

    /// Checks and skips an object or array starting at the cursor.
    fn skip_nested(&mut self, depth: usize) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        let close = match self.next()? {
            b'{' => b'}',
            b'[' => b']',
            _ => return None,
        };
        self.ws();
        if self.peek() == Some(close) {
            self.i += 1;
            return Some(());
        }
        loop {
            if close == b'}' {
                self.eat(b'"')?;
                self.string_body()?;
                self.ws();
                self.eat(b':')?;
                self.ws();
            }
            match self.peek()? {
                b'{' | b'[' => self.skip_nested(depth + 1)?,
                _ => {
                    self.value()?;
                }
            }
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b if b == close => return Some(()),
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(s: &str) -> Option<Vec<(&str, Value<'_>)>> {
        let mut v = Vec::new();
        object(s, |k, x| {
            v.push((k, x));
            true
        })
        .map(|()| v)
    }

    #[test]
    fn has_control_finds_any_byte_below_0x20() {
        for len in 0..40 {
            let clean = vec![0x20u8; len];
            assert!(!has_control(&clean), "len {len}");
            let high = vec![0xffu8; len];
            assert!(!has_control(&high), "len {len}");
            for at in 0..len {
                for c in [0x00, 0x01, 0x09, 0x1f] {
                    let mut v = vec![0x7fu8; len];
                    v[at] = c;
                    assert!(has_control(&v), "len {len} at {at} byte {c:#x}");
                }
            }
        }
    }

    #[test]
    fn quote_or_backslash_finds_the_first() {
        for len in 0..40 {
            for at in 0..=len {
                for c in [b'"', b'\\'] {
                    let mut v = vec![b'a'; len];
                    v.extend([0xff, 0x00, b'#', b'[', b'"' + 0x80]);
                    if at < len {
                        v[at] = c;
                        // A later one never wins.
                        v.push(b'"');
                    }
                    let want = v.iter().position(|&x| x == b'"' || x == b'\\');
                    assert_eq!(quote_or_backslash(&v), want, "len {len} at {at}");
                }
            }
        }
    }

    #[test]
    fn accepts_the_plain_subset() {
        use Value::*;
        let cases: &[(&str, &[(&str, Value)])] = &[
            ("{}", &[]),
            (" { } ", &[]),
            (
                r#"{"a":"x","b":12,"c":true,"d":false,"e":null}"#,
                &[
                    ("a", Str("x")),
                    ("b", Int("12")),
                    ("c", Bool("true")),
                    ("d", Bool("false")),
                    ("e", Null),
                ],
            ),
            (
                "{ \"a\" :\t\"é ü\" ,\r\n\"b\":0 }",
                &[("a", Str("é ü")), ("b", Int("0"))],
            ),
            (
                r#"{"n":-1,"f":1.5,"x":2e10,"y":0.0E-1,"big":12345678901234567890}"#,
                &[
                    ("n", OtherNumber),
                    ("f", OtherNumber),
                    ("x", OtherNumber),
                    ("y", OtherNumber),
                    ("big", OtherNumber),
                ],
            ),
            (
                r#"{"o":{"a":[1,{"b":null},"s",[]],"c":{}},"z":"last"}"#,
                &[
                    ("o", Nested(r#"{"a":[1,{"b":null},"s",[]],"c":{}}"#)),
                    ("z", Str("last")),
                ],
            ),
            (r#"{"a":1,"a":2}"#, &[("a", Int("1")), ("a", Int("2"))]),
            (
                r#"{"m":"say \"hi\" \u00e9\ud83d\ude00\/\\","o":["\u12aB\n"]}"#,
                &[
                    ("m", Escaped(r#"say \"hi\" \u00e9\ud83d\ude00\/\\"#)),
                    ("o", Nested(r#"["\u12aB\n"]"#)),
                ],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(fields(input).as_deref(), Some(*want), "input: {input}");
            // Everything accepted is JSON to serde_json as well.
            assert!(
                serde_json::from_str::<serde_json::Value>(input).is_ok(),
                "{input}"
            );
        }
    }

    /// `unescape` decodes as serde_json does, and declines exactly the lone
    /// surrogates serde_json rejects in a string.
    #[test]
    fn unescape_matches_serde_json() {
        let cases = [
            r"plain",
            r#"q\"uote\\ back\/slash"#,
            r"\b\f\n\r\t",
            r"\u0041\u00e9\u20AC\u0000",
            r"\ud83d\ude00 pair",
            r"\ud83d alone",
            r"\ude00 trailing alone",
            r"\ud83d\u0041 not a pair",
            r"\ud83d\n",
            "caf\u{e9} \\u00e9",
        ];
        for raw in cases {
            let mut got = String::new();
            let got = unescape(raw, &mut got).map(|()| got);
            let want = serde_json::from_str::<String>(&format!("\"{raw}\"")).ok();
            assert_eq!(got, want, "raw: {raw}");
        }
    }

    /// Broken JSON and everything outside the subset: no answer, so the
    /// caller asks serde_json.
    #[test]
    fn declines_everything_else() {
        let cases = [
            "",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{,}",
            "{\"a\":1 \"b\":2}",
            "{\"a\":1}x",
            "{\"a\":1}{}",
            "[1]",
            "{\"a\\u0062\":1}",
            "{\"a\":\"bad \\x escape\"}",
            "{\"a\":\"short \\u12\"}",
            "{\"a\":\"end \\",
            "{\"a\":\"tab\there\"}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":1e}",
            "{\"a\":-}",
            "{\"a\":+1}",
            "{\"a\":tru}",
            "{\"a\":nul}",
            "{\"a\":NaN}",
            "{\"a\":[1,]}",
            "{\"a\":[1 2]}",
            "{\"a\":{\"b\"}}",
            "{\"a\":{\"b\":1,}}",
            "{\"a\":\"unterminated}",
            "{\"a\":1\u{a0}}",
            "{'a':1}",
        ];
        for input in cases {
            assert_eq!(fields(input), None, "input: {input:?}");
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(40), "]".repeat(40));
        assert_eq!(fields(&deep), None, "too deep for the fast path");
        assert_eq!(object(r#"{"a":1,"b":2}"#, |k, _| k != "b"), None);
    }
}
