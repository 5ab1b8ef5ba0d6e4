//! Byte searches shared by stages of the flow (the parsers and the
//! attribution of stream names); it stands beside the flow, so any stage
//! may use it.

/// Position of the first `needle` in `b`, eight bytes at a time in a
/// register: the fields searched here (ARN parts, stream names) are a few
/// bytes to a few dozen, where a call into `memchr`'s vector code costs
/// more than the search.
#[inline(always)]
pub fn find_byte(b: &[u8], needle: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES * u64::from(needle);
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let v = u64::from_le_bytes(chunk.try_into().expect("8 bytes")) ^ pattern;
        // High bit of each zero byte (exact for the lowest one, the only
        // one used).
        let hit = v.wrapping_sub(ONES) & !v & HIGH;
        if hit != 0 {
            return Some(i + (hit.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..].iter().position(|&c| c == needle).map(|j| i + j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_byte_finds_the_first() {
        for len in 0..40 {
            for at in 0..=len {
                let mut v = vec![b'a'; len];
                v.extend([0xff, 0x00, b'/' + 0x80, b';', b'9']);
                if at < len {
                    v[at] = b':';
                    // A later one never wins.
                    v.push(b':');
                }
                let want = v.iter().position(|&x| x == b':');
                assert_eq!(find_byte(&v, b':'), want, "len {len} at {at}");
            }
        }
    }
}
