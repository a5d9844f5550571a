//! Fuzzes the request parser: arbitrary bytes, delivered in two pieces at a
//! fuzzer-chosen point, must never panic, and every parsed command must
//! consume a non-empty, in-bounds prefix of the buffer.
#![no_main]

use cairn::resp::{Argv, Limits, Parsed, RequestParser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let cut = first as usize % (body.len() + 1);
    let limits = Limits {
        max_bulk_len: 512 * 1024 * 1024,
        authenticated: first & 1 == 0,
    };
    let mut p = RequestParser::new();
    let mut buf: Vec<u8> = Vec::new();
    for piece in [&body[..cut], &body[cut..]] {
        buf.extend_from_slice(piece);
        loop {
            match p.parse(&buf, &limits) {
                Err(_) => return,
                Ok(Parsed::Incomplete) => break,
                Ok(Parsed::Skip(n)) => {
                    assert!(n > 0 && n <= buf.len());
                    buf.drain(..n);
                    p.reset();
                }
                Ok(Parsed::Multibulk(n)) => {
                    assert!(n > 0 && n <= buf.len());
                    let argv = Argv::new(&buf, &p.spans);
                    assert!(argv.iter().all(|a| a.len() <= n));
                    buf.drain(..n);
                    p.reset();
                }
                Ok(Parsed::Inline(n)) => {
                    assert!(n > 0 && n <= buf.len());
                    let argv = Argv::new(&p.scratch, &p.spans);
                    assert!(argv.iter().count() == p.spans.len());
                    buf.drain(..n);
                    p.reset();
                }
            }
        }
    }
});
