//! Redis's glob patterns (KEYS, SCAN MATCH, PSUBSCRIBE, CONFIG GET):
//! `*`, `?`, `[abc]`, `[^a-z]` and `\` escapes.
//!
//! Matching backtracks only to the most recent `*`, so a hostile pattern
//! costs O(pattern × subject) rather than exponential time.

/// Matches one pattern token at `p` against byte `c`; returns whether it
/// matched and the index after the token.
fn match_token(pat: &[u8], mut p: usize, c: u8, nocase: bool) -> (bool, usize) {
    let eq = |a: u8, b: u8| {
        if nocase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    match pat[p] {
        b'?' => (true, p + 1),
        b'[' => {
            p += 1;
            let negate = p < pat.len() && pat[p] == b'^';
            if negate {
                p += 1;
            }
            let mut matched = false;
            loop {
                if p >= pat.len() {
                    // Unterminated class: Redis treats the end as closing it.
                    break;
                }
                if pat[p] == b']' {
                    p += 1;
                    break;
                }
                if pat[p] == b'\\' && p + 1 < pat.len() {
                    p += 1;
                    if eq(pat[p], c) {
                        matched = true;
                    }
                    p += 1;
                } else if p + 2 < pat.len() && pat[p + 1] == b'-' {
                    let (mut lo, mut hi) = (pat[p], pat[p + 2]);
                    if lo > hi {
                        std::mem::swap(&mut lo, &mut hi);
                    }
                    let cc = if nocase { c.to_ascii_lowercase() } else { c };
                    let (l2, h2) = if nocase {
                        (lo.to_ascii_lowercase(), hi.to_ascii_lowercase())
                    } else {
                        (lo, hi)
                    };
                    if (cc >= l2 && cc <= h2) || (c >= lo && c <= hi) {
                        matched = true;
                    }
                    p += 3;
                } else {
                    if eq(pat[p], c) {
                        matched = true;
                    }
                    p += 1;
                }
            }
            (matched != negate, p)
        }
        b'\\' if p + 1 < pat.len() => (eq(pat[p + 1], c), p + 2),
        x => (eq(x, c), p + 1),
    }
}

pub fn matches(pat: &[u8], s: &[u8], nocase: bool) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && pat[p] == b'*' {
            while p < pat.len() && pat[p] == b'*' {
                p += 1;
            }
            if p == pat.len() {
                return true;
            }
            star = Some((p, i));
            continue;
        }
        if p < pat.len() {
            let (ok, next) = match_token(pat, p, s[i], nocase);
            if ok {
                p = next;
                i += 1;
                continue;
            }
        }
        match star {
            Some((sp, si)) => {
                p = sp;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            None => return false,
        }
    }
    while p < pat.len() && pat[p] == b'*' {
        p += 1;
    }
    p == pat.len()
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns() {
        assert!(matches(b"*", b"anything", false));
        assert!(matches(b"h?llo", b"hello", false));
        assert!(matches(b"h*llo", b"heeeello", false));
        assert!(matches(b"h[ae]llo", b"hallo", false));
        assert!(!matches(b"h[^e]llo", b"hello", false));
        assert!(matches(b"h[a-b]llo", b"hbllo", false));
        assert!(matches(b"foo\\*", b"foo*", false));
        assert!(!matches(b"foo\\*", b"foox", false));
        assert!(matches(b"FOO*", b"foobar", true));
        assert!(!matches(b"a*b", b"aXc", false));
        assert!(matches(b"*a*b*c*", b"xxaxxbxxc", false));
    }

    #[test]
    fn hostile_pattern_is_fast() {
        let pat = b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        let s = vec![b'a'; 5000];
        assert!(!matches(pat, &s, false));
    }
}
