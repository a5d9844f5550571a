//! LZF, the compression RDB strings use. Our own small implementation: the
//! `lzf` crate zeroes a 512 KB hash table per call, which made saving a
//! million short strings take seconds; here the table scales with the input.
//!
//! Format: a control byte below 32 starts a literal run of ctrl+1 bytes;
//! otherwise its top 3 bits are a match length-2 (7 = read one more byte and
//! add it) and its low 5 bits with the next byte are the distance-1.

const MAX_LIT: usize = 32;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

fn flush_literals(out: &mut Vec<u8>, lit: &[u8]) {
    for chunk in lit.chunks(MAX_LIT) {
        out.push((chunk.len() - 1) as u8);
        out.extend_from_slice(chunk);
    }
}

/// Compresses `input`; `None` if the result would exceed `max_out` bytes.
pub fn compress(input: &[u8], max_out: usize) -> Option<Vec<u8>> {
    let n = input.len();
    let hlog = (usize::BITS - n.leading_zeros()).clamp(4, 14);
    let mask = (1usize << hlog) - 1;
    // Positions + 1, so 0 means empty.
    let mut table = vec![0u32; 1 << hlog];
    let mut out = Vec::with_capacity(n.min(max_out) + 8);
    let mut lit_start = 0;
    let mut i = 0;
    while i + 2 < n {
        let v = (input[i] as u32) << 16 | (input[i + 1] as u32) << 8 | input[i + 2] as u32;
        let h = (v.wrapping_mul(2654435761) >> (32 - hlog)) as usize & mask;
        let cand = table[h] as usize;
        table[h] = (i + 1) as u32;
        if cand > 0 {
            let r = cand - 1;
            let off = i - r - 1;
            if off < MAX_OFF && input[r..r + 3] == input[i..i + 3] {
                let max = MAX_REF.min(n - i);
                let mut len = 3;
                while len < max && input[r + len] == input[i + len] {
                    len += 1;
                }
                flush_literals(&mut out, &input[lit_start..i]);
                let code = len - 2;
                if code < 7 {
                    out.push((code << 5 | off >> 8) as u8);
                } else {
                    out.push((7 << 5 | off >> 8) as u8);
                    out.push((code - 7) as u8);
                }
                out.push(off as u8);
                i += len;
                lit_start = i;
                if out.len() > max_out {
                    return None;
                }
                continue;
            }
        }
        i += 1;
    }
    flush_literals(&mut out, &input[lit_start..]);
    (out.len() <= max_out).then_some(out)
}

/// Decompresses exactly `out_len` bytes with every reference checked.
pub fn decompress(input: &[u8], out_len: usize) -> Result<Vec<u8>, String> {
    // LZF expands at most ~90x; a larger claim is a corrupt length, and must
    // not make us allocate gigabytes.
    if out_len > input.len().saturating_mul(100) + 64 {
        return Err(format!(
            "claims {out_len} bytes from {} compressed",
            input.len()
        ));
    }
    let mut out = Vec::with_capacity(out_len);
    let mut i = 0;
    while i < input.len() {
        let ctrl = input[i] as usize;
        i += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            let lit = input.get(i..i + n).ok_or("literal run past the input")?;
            if out.len() + n > out_len {
                return Err("output longer than announced".into());
            }
            out.extend_from_slice(lit);
            i += n;
        } else {
            let mut n = ctrl >> 5;
            if n == 7 {
                n += *input.get(i).ok_or("truncated back-reference")? as usize;
                i += 1;
            }
            n += 2;
            let low = *input.get(i).ok_or("truncated back-reference")? as usize;
            i += 1;
            let back = ((ctrl & 0x1f) << 8) + low + 1;
            if back > out.len() {
                return Err("back-reference before the start".into());
            }
            if out.len() + n > out_len {
                return Err("output longer than announced".into());
            }
            let from = out.len() - back;
            for k in 0..n {
                let b = out[from + k];
                out.push(b);
            }
        }
    }
    if out.len() != out_len {
        return Err(format!(
            "decompressed to {} bytes, {out_len} announced",
            out.len()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_matches_the_lzf_crate_format() {
        let noise: Vec<u8> = (0..3000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 9) as u8)
            .collect();
        let inputs: Vec<Vec<u8>> = vec![
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec(),
            b"lorem ipsum dolor sit amet ".repeat(500),
            [&noise[..], &noise[..], b"tail"].concat(),
            b"abcabcabcabcabcabcabcabcabcxyz".to_vec(),
            vec![0u8; 100_000],
        ];
        for inp in &inputs {
            let c = compress(inp, inp.len()).expect("compressible");
            assert!(c.len() < inp.len());
            assert_eq!(decompress(&c, inp.len()).unwrap(), *inp);
            // The reference decoder reads our stream.
            assert_eq!(lzf_reference_decode(&c, inp.len()), *inp);
        }
        assert!(compress(&noise[..100], 96).is_none());
    }

    /// The decoder of the `lzf` crate (a port of liblzf, as Redis uses).
    fn lzf_reference_decode(c: &[u8], n: usize) -> Vec<u8> {
        ::lzf::decompress(c, n).unwrap()
    }
}
