//! Legacy logging-role text lines (reference §3):
//!
//! ```text
//! [<stream-name>] <ACTIVITY> Key=Value Key="value with spaces" …
//! ```
//!
//! The stream token is optional (the troubleshooting docs quote lines
//! without it): an upper-case activity word as the first token means there
//! is none. Everything after the activity must be `Key=Value` pairs with
//! CamelCase keys, so free text that merely starts with an upper-case word
//! (a Lambda `START RequestId: …` line) is rejected rather than counted as a
//! Transfer event. Unknown keys are accepted and ignored.

use std::borrow::Cow;

use crate::event::{Activity, Format, ParseError, Parsed, ServerEvent};

/// An activity word: `[A-Z][A-Z0-9_]*`, at most 64 bytes.
fn is_activity_word(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_uppercase()
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
}

fn is_key(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphabetic()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

/// Whether an ASCII byte is `char::is_whitespace` (which, unlike
/// `u8::is_ascii_whitespace`, includes the vertical tab).
fn is_space(b: u8) -> bool {
    b.is_ascii_whitespace() || b == 0x0b
}

/// `s.find(char::is_whitespace)`, eight bytes at a time in a register
/// while the text is ASCII (the whole line, nearly always): decoding
/// characters cost more than the rest of the parse.
fn find_space(s: &str) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let b = s.as_bytes();
    let mut i = 0;
    loop {
        // The next byte below 0x21 or not ASCII: only those can start a
        // whitespace character.
        let at = match b.get(i..i + 8) {
            Some(chunk) => {
                let v = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
                // High bit of each byte below 0x21 (exact for the lowest
                // one) or at or above 0x80.
                let hit = ((v.wrapping_sub(ONES * 0x21) & !v) | v) & HIGH;
                if hit == 0 {
                    i += 8;
                    continue;
                }
                i + (hit.trailing_zeros() / 8) as usize
            }
            None => i + b[i..].iter().position(|&c| c < 0x21 || !c.is_ascii())?,
        };
        if !b[at].is_ascii() {
            // `at` follows ASCII bytes only, so it is a char boundary.
            return s[at..].find(char::is_whitespace).map(|j| at + j);
        }
        if is_space(b[at]) {
            return Some(at);
        }
        // Another control character: not whitespace; go on after it.
        i = at + 1;
    }
}

/// `s.trim_start()`, byte by byte while the text is ASCII.
fn trim_start(s: &str) -> &str {
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if !b.is_ascii() {
            return s[i..].trim_start();
        }
        if !is_space(b) {
            return &s[i..];
        }
    }
    ""
}

/// Splits off the next whitespace-delimited token.
fn next_token(s: &str) -> Option<(&str, &str)> {
    let s = trim_start(s);
    if s.is_empty() {
        return None;
    }
    match find_space(s) {
        Some(i) => Some((&s[..i], &s[i..])),
        None => Some((s, "")),
    }
}

/// Reads `Key=Value` / `Key="quoted value"` pairs. Inside quotes `\"` and
/// `\\` are unescaped; an unterminated quote runs to the end of the line.
/// Values borrow from the line unless they hold an escape.
/// Returns `None` if something that is not a pair is found.
fn pairs<'a>(mut rest: &'a str, mut f: impl FnMut(&'a str, Cow<'a, str>)) -> Option<()> {
    loop {
        rest = trim_start(rest);
        if rest.is_empty() {
            return Some(());
        }
        let eq = super::find_byte(rest.as_bytes(), b'=')?;
        let key = &rest[..eq];
        if !is_key(key) {
            return None;
        }
        let after = &rest[eq + 1..];
        if let Some(quoted) = after.strip_prefix('"') {
            let (value, end) = quoted_value(quoted);
            f(key, value);
            rest = &quoted[end..];
        } else {
            let end = find_space(after).unwrap_or(after.len());
            f(key, Cow::Borrowed(&after[..end]));
            rest = &after[end..];
        }
    }
}

/// The value of a quoted string whose opening quote is already consumed,
/// and how many bytes it took (closing quote included).
fn quoted_value(quoted: &str) -> (Cow<'_, str>, usize) {
    let b = quoted.as_bytes();
    match b.iter().position(|&c| c == b'"' || c == b'\\') {
        // No escape: the value is a slice of the line.
        Some(i) if b[i] == b'"' => return (Cow::Borrowed(&quoted[..i]), i + 1),
        None => return (Cow::Borrowed(quoted), quoted.len()),
        Some(_) => {}
    }
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    let mut end = quoted.len();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, n)) => value.push(n),
                None => value.push('\\'),
            },
            '"' => {
                end = i + 1;
                break;
            }
            c => value.push(c),
        }
    }
    (Cow::Owned(value), end)
}

/// Parses a text line.
pub fn parse(line: &str) -> Result<Parsed<'_>, ParseError> {
    let (first, rest) = next_token(line).ok_or(ParseError::Empty)?;
    let (stream_token, activity, rest) = if is_activity_word(first) {
        // `ERRORS AUTH_FAILURE …`: ERRORS is a stream, not an activity, when
        // another activity word follows it.
        match next_token(rest) {
            Some((second, rest2)) if is_activity_word(second) && !second.contains('=') => {
                (Some(first), second, rest2)
            }
            _ => (None, first, rest),
        }
    } else {
        match next_token(rest) {
            Some((second, rest2)) if is_activity_word(second) => (Some(first), second, rest2),
            _ => return Err(ParseError::UnknownText),
        }
    };
    let mut ev = ServerEvent {
        activity: Some(Activity::from_wire(activity)),
        stream_token: stream_token.map(Cow::Borrowed),
        ..Default::default()
    };
    let ok = pairs(rest, |key, value| match key {
        "User" => ev.user = Some(value),
        "Message" => ev.message = Some(value),
        "Method" => ev.method = Some(value),
        "Operation" => ev.operation = Some(value),
        "Path" => ev.path = Some(value),
        "SourceIP" => ev.source_ip = Some(value),
        "SessionId" => ev.session_id = Some(value),
        "BytesIn" => ev.bytes_in = value.trim().parse().ok(),
        "BytesOut" => ev.bytes_out = value.trim().parse().ok(),
        _ => {}
    });
    if ok.is_none() {
        return Err(ParseError::UnknownText);
    }
    Ok(Parsed::Server {
        format: Format::Legacy,
        event: ev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_helpers_match_the_char_functions() {
        let cases = [
            "",
            " ",
            "a b",
            "\u{b}x",
            "\u{c}\t\r\n y",
            "abc",
            "é b",
            "a\u{a0}b",
            "\u{85}x",
            "x\u{2003}y",
            "  \u{3000} z",
            "ab\u{1680}",
            "abcdefgh ijklmnop",
            "abcdefghijklmnopq\u{1}rstuvwx\u{1f}yz\u{0}! tail",
            "abcdefghijklmn\u{7f}\u{1}op\u{a0}q r",
            "0123456789\u{1}\u{2}\u{3}\u{4}\u{5}\u{6}\u{7}\u{8}\u{e}\u{f}\u{10} end",
            "abcdefghijklmnopé\u{2028}x",
        ];
        for s in cases {
            assert_eq!(find_space(s), s.find(char::is_whitespace), "{s:?}");
            assert_eq!(trim_start(s), s.trim_start(), "{s:?}");
        }
    }
}
