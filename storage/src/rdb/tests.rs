use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};

use super::compact::listpack_build;
use super::decode::{parse_records, Record};
use super::encode::{put_len, put_string};
use super::*;
use crate::keyspace::Keyspace;
use crate::types::{hash::Hash, list::List, set::Set, zset::ZSet};

/// A comparable rendering of a value: type name and sorted contents.
fn canon(v: &Value) -> (String, Vec<Vec<u8>>) {
    let mut items = Vec::new();
    match v {
        Value::Str(s) => items.push(s.to_vec()),
        Value::List(l) => l.for_each(|e| items.push(e.to_vec())),
        Value::Set(s) => {
            s.for_each(|e| items.push(e.to_vec()));
            items.sort();
        }
        Value::Hash(h) => {
            h.for_each(|f, v| items.push([f, b"=", v].concat()));
            items.sort();
        }
        Value::ZSet(z) => z.for_each(|m, s| items.push([m, format!("={s}").as_bytes()].concat())),
        Value::Stream(_) => {}
    }
    (v.type_name().to_string(), items)
}

type Dump = BTreeMap<(usize, Vec<u8>), ((String, Vec<Vec<u8>>), Option<u64>)>;

fn contents(ks: &Keyspace) -> Dump {
    let mut out = BTreeMap::new();
    let mut l = ks.lock_all(0);
    for db in 0..ks.db_count() {
        l.for_each_key(db, |k, e| {
            out.insert((db, k.to_vec()), (canon(&e.value), e.expire_at_ms()));
        });
    }
    out
}

fn sample_keyspace() -> Keyspace {
    let ks = Keyspace::new(16);
    {
        let mut l = ks.lock_all(1000);
        let s = |b: &[u8]| Value::from_bytes(b);
        l.set(0, b"empty", s(b""));
        l.set(0, b"small", s(b"hello"));
        for (i, n) in [
            "0",
            "-1",
            "127",
            "-128",
            "300",
            "-40000",
            "2147483647",
            "-2147483648",
            "2147483648",
            "9223372036854775807",
            "007",
            "-0",
            "+1",
        ]
        .iter()
        .enumerate()
        {
            l.set(0, format!("int{i}").as_bytes(), s(n.as_bytes()));
        }
        l.set(0, b"compressible", s(&b"abcabcabc".repeat(1000)));
        let noise: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        l.set(0, b"incompressible", s(&noise));
        l.set(0, &b"\x00binary\xffkey"[..], s(b"\x00\x01\x02"));
        l.set(0, b"ttl", s(b"v"));
        l.set_expire(0, b"ttl", 4_000_000_000_000);
        let mut list = List::new();
        for i in 0..1000 {
            list.push_back(format!("item-{i}").as_bytes());
        }
        list.push_back(&vec![b'L'; 20_000]);
        list.push_back(b"");
        l.set(0, b"biglist", Value::List(list));
        let mut small = List::new();
        small.push_back(b"a");
        small.push_back(b"12");
        l.set(3, b"smalllist", Value::List(small));
        let mut set = Set::new();
        for i in 0..600 {
            set.insert(format!("{i}").as_bytes());
        }
        set.insert(b"not-a-number");
        l.set(0, b"set", Value::Set(set));
        let mut h = Hash::new();
        for i in 0..300 {
            h.insert(format!("f{i}").as_bytes(), format!("{}", i * 7).as_bytes());
        }
        h.insert(b"long", &[b'h'; 100]);
        l.set(0, b"hash", Value::Hash(h));
        let mut z = ZSet::new();
        for i in 0..200 {
            z.insert(format!("m{i}").as_bytes(), i as f64 / 3.0 - 20.0);
        }
        z.insert(b"inf", f64::INFINITY);
        z.insert(b"-inf", f64::NEG_INFINITY);
        z.insert(b"tiny", 5e-324);
        l.set(15, b"zset", Value::ZSet(Box::new(z)));
    }
    ks
}

fn save_to_vec(ks: &Keyspace, opts: &SaveOptions) -> Vec<u8> {
    let mut out = Vec::new();
    let mut l = ks.lock_all(1000);
    write_snapshot(&mut out, &mut l, opts).unwrap();
    out
}

fn load_into_fresh(buf: &[u8]) -> Result<Keyspace, RdbError> {
    let snap = parse(buf, 16)?;
    let ks = Keyspace::new(16);
    {
        let mut l = ks.lock_all(1000);
        install(snap, &mut l);
    }
    Ok(ks)
}

#[test]
fn round_trip_every_type_with_and_without_compression() {
    let ks = sample_keyspace();
    let want = contents(&ks);
    for compression in [true, false] {
        let opts = SaveOptions {
            compression,
            ..SaveOptions::default()
        };
        let buf = save_to_vec(&ks, &opts);
        assert_eq!(&buf[..9], b"REDIS0010");
        let back = load_into_fresh(&buf).unwrap();
        assert_eq!(contents(&back), want, "compression={compression}");
    }
    let small = save_to_vec(&ks, &SaveOptions::default());
    let big = save_to_vec(
        &ks,
        &SaveOptions {
            compression: false,
            ..SaveOptions::default()
        },
    );
    assert!(
        small.len() + 20_000 < big.len(),
        "LZF did not shrink the file"
    );
}

#[test]
fn checksum_trailer_and_rdbchecksum_no() {
    let ks = sample_keyspace();
    let buf = save_to_vec(&ks, &SaveOptions::default());
    let n = buf.len();
    let stored = u64::from_le_bytes(buf[n - 8..].try_into().unwrap());
    assert_eq!(stored, crate::crc64::crc64(0, &buf[..n - 8]));
    let plain = save_to_vec(
        &ks,
        &SaveOptions {
            checksum: false,
            ..SaveOptions::default()
        },
    );
    assert_eq!(&plain[plain.len() - 8..], &[0u8; 8]);
    assert!(load_into_fresh(&plain).is_ok());
}

#[test]
fn flipped_byte_is_caught_with_offset() {
    let ks = sample_keyspace();
    let buf = save_to_vec(&ks, &SaveOptions::default());
    // Flip a byte inside the big incompressible string: the structure stays
    // valid, only the checksum can notice.
    let at = buf.windows(4).position(|w| w == b"item").unwrap() + 2;
    let mut bad = buf.clone();
    bad[at] ^= 0x20;
    let e = parse(&bad, 16).unwrap_err();
    assert!(e.reason.contains("checksum"), "{e}");
    assert_eq!(e.offset, buf.len() - 8, "{e}");
    assert!(e.to_string().contains(&format!("offset {}", buf.len() - 8)));
}

#[test]
fn truncation_is_refused_everywhere() {
    let ks = sample_keyspace();
    let buf = save_to_vec(&ks, &SaveOptions::default());
    for cut in (0..buf.len())
        .step_by(97)
        .chain([buf.len() - 1, buf.len() - 8, 9])
    {
        let e = parse(&buf[..cut], 16).unwrap_err();
        assert!(e.offset <= cut, "cut {cut}: {e}");
    }
    let e = parse(&buf[..buf.len() / 2], 16).unwrap_err();
    assert!(e.reason.contains("unexpected end of file"), "{e}");
}

#[test]
fn unknown_type_and_future_version_are_refused() {
    let mut f = b"REDIS0010".to_vec();
    f.push(OP_SELECTDB);
    f.push(0);
    let type_at = f.len();
    f.push(30);
    put_string(&mut f, b"k", false);
    f.push(OP_EOF);
    f.extend_from_slice(&[0; 8]);
    let e = parse(&f, 16).unwrap_err();
    assert_eq!(e.offset, type_at);
    assert!(e.reason.contains("unknown RDB value type 30"), "{e}");

    let mut v13 = save_to_vec(&Keyspace::new(1), &SaveOptions::default());
    v13[5..9].copy_from_slice(b"0013");
    let e = parse(&v13, 16).unwrap_err();
    assert!(e.reason.contains("version 13"), "{e}");
    assert_eq!(e.offset, 5);
    let e = parse(b"REDIX0010\xff", 16).unwrap_err();
    assert!(e.reason.contains("signature"), "{e}");
}

fn sample_stream() -> crate::types::stream::Stream {
    use crate::types::stream::{Consumer, Group, Nack, Stream, StreamId};
    let mut st = Stream::new();
    for i in 1..=230u64 {
        let v = i.to_string();
        st.append(StreamId::new(i, 0), &[b"f".as_slice(), v.as_bytes()])
            .unwrap();
    }
    st.delete_ids(&[StreamId::new(3, 0)]);
    let mut g = Group::new(StreamId::new(10, 0), 10);
    for (id, who) in [(5u64, b"alice".as_slice()), (7, b"bob")] {
        g.consumers.entry(who.to_vec()).or_insert_with(|| Consumer {
            seen_time: 1234,
            ..Default::default()
        });
        g.pel.insert(
            StreamId::new(id, 0),
            Nack {
                consumer: who.to_vec(),
                delivery_time: 99,
                delivery_count: 2,
            },
        );
        g.consumers
            .get_mut(who)
            .unwrap()
            .pel
            .insert(StreamId::new(id, 0));
    }
    st.groups.insert(b"g1".to_vec(), g);
    st.groups
        .insert(b"g2".to_vec(), Group::new(StreamId::MIN, -1));
    st
}

#[test]
fn stream_round_trips_through_a_dump_payload() {
    let st = sample_stream();
    let p = dump_payload(&Value::Stream(Box::new(st.clone())), true).unwrap();
    let Ok(Value::Stream(back)) = restore_payload(&p) else {
        panic!("not a stream")
    };
    assert_eq!(back.len(), 229);
    assert_eq!(back.entries_added, 230);
    assert_eq!(back.max_deleted_id, st.max_deleted_id);
    assert_eq!(back.first_id, st.first_id);
    assert_eq!(back.node_count(), st.node_count());
    let g = &back.groups[b"g1".as_slice()];
    assert_eq!(g.entries_read, 10);
    assert_eq!(g.pel.len(), 2);
    assert_eq!(g.consumers[b"bob".as_slice()].pel.len(), 1);
    assert_eq!(back.groups[b"g2".as_slice()].entries_read, -1);
    // Every truncation is refused, never a panic.
    let body = &p[..p.len() - 10];
    for cut in 1..body.len() {
        let mut r = decode::Reader::new(&body[..cut]);
        let ty = r.u8().unwrap();
        assert!(decode::read_value(&mut r, ty, 0).is_err(), "cut at {cut}");
    }
}

#[test]
fn truncated_stream_is_refused_with_its_offset() {
    let mut f = b"REDIS0010".to_vec();
    f.push(TYPE_STREAM_LISTPACKS_2);
    put_string(&mut f, b"s", false);
    f.push(OP_EOF);
    f.extend_from_slice(&[0; 8]);
    assert!(parse(&f, 16).is_err());
}

#[test]
fn too_many_databases_refused() {
    let ks = sample_keyspace();
    let buf = save_to_vec(&ks, &SaveOptions::default());
    let e = parse(&buf, 4).unwrap_err();
    assert!(e.reason.contains("databases"), "{e}");
}

#[test]
fn expired_keys_are_skipped_on_install() {
    let ks = Keyspace::new(1);
    {
        let mut l = ks.lock_all(0);
        l.set(0, b"old", Value::from_bytes(b"1"));
        l.set_expire(0, b"old", 500);
        l.set(0, b"new", Value::from_bytes(b"1"));
        l.set_expire(0, b"new", 5000);
    }
    let mut buf = Vec::new();
    {
        let mut l = ks.lock_all(0);
        write_snapshot(&mut buf, &mut l, &SaveOptions::default()).unwrap();
    }
    let snap = parse(&buf, 1).unwrap();
    assert_eq!(snap.keys.len(), 2);
    let fresh = Keyspace::new(1);
    let mut l = fresh.lock_all(1000);
    let st = install(snap, &mut l);
    assert_eq!(
        st,
        InstallStats {
            loaded: 1,
            expired_skipped: 1
        }
    );
}

#[test]
fn an_aof_base_loads_expired_keys_for_the_log_to_settle() {
    let ks = Keyspace::new(1);
    {
        let mut l = ks.lock_all(0);
        l.set(0, b"old", Value::from_bytes(b"1"));
        l.set_expire(0, b"old", 500);
    }
    let mut buf = Vec::new();
    {
        let mut l = ks.lock_all(0);
        write_snapshot(&mut buf, &mut l, &SaveOptions::default()).unwrap();
    }
    let fresh = Keyspace::new(1);
    let mut l = fresh.lock_all(1000);
    l.no_expire = true;
    let st = install(parse(&buf, 1).unwrap(), &mut l);
    assert_eq!(st.loaded, 1);
    assert_eq!(l.db_expires_len(0), 1);
}

/// A test-only ziplist builder (strings and small integers).
fn ziplist(items: &[&[u8]]) -> Vec<u8> {
    let mut zl = vec![0u8; 10];
    let mut prev = 0usize;
    let mut tail = 10;
    for it in items {
        let start = zl.len();
        tail = start;
        if prev < 254 {
            zl.push(prev as u8);
        } else {
            zl.push(254);
            zl.extend_from_slice(&(prev as u32).to_le_bytes());
        }
        match std::str::from_utf8(it)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
        {
            Some(v) if (0..=12).contains(&v) => zl.push(0xf1 + v as u8),
            Some(v) if i16::try_from(v).is_ok() => {
                zl.push(0xc0);
                zl.extend_from_slice(&(v as i16).to_le_bytes());
            }
            _ => {
                assert!(it.len() < 64);
                zl.push(it.len() as u8);
                zl.extend_from_slice(it);
            }
        }
        prev = zl.len() - start;
    }
    zl.push(0xff);
    let n = zl.len() as u32;
    zl[0..4].copy_from_slice(&n.to_le_bytes());
    zl[4..8].copy_from_slice(&(tail as u32).to_le_bytes());
    zl[8..10].copy_from_slice(&(items.len() as u16).to_le_bytes());
    zl
}

/// A version-`ver` file holding one key of every compact encoding.
fn compact_encodings_file(ver: u32) -> Vec<u8> {
    let mut f = format!("REDIS{ver:04}").into_bytes();
    let key = |f: &mut Vec<u8>, ty: u8, name: &[u8], blob: &[u8]| {
        f.push(ty);
        put_string(f, name, false);
        put_string(f, blob, true);
    };
    key(
        &mut f,
        TYPE_LIST_ZIPLIST,
        b"zl-list",
        &ziplist(&[b"a", b"7", b"-300", b"bee"]),
    );
    key(
        &mut f,
        TYPE_HASH_ZIPLIST,
        b"zl-hash",
        &ziplist(&[b"f1", b"v1", b"f2", b"2"]),
    );
    key(
        &mut f,
        TYPE_ZSET_ZIPLIST,
        b"zl-zset",
        &ziplist(&[b"m1", b"1.5", b"m2", b"3"]),
    );
    key(
        &mut f,
        TYPE_HASH_LISTPACK,
        b"lp-hash",
        &listpack_build([&b"f"[..], b"v", b"g", b"w"]),
    );
    key(
        &mut f,
        TYPE_ZSET_LISTPACK,
        b"lp-zset",
        &listpack_build([&b"a"[..], b"-2.5", b"b", b"inf"]),
    );
    key(
        &mut f,
        TYPE_SET_LISTPACK,
        b"lp-set",
        &listpack_build([&b"x"[..], b"y"]),
    );
    let mut intset = vec![2, 0, 0, 0, 3, 0, 0, 0];
    for v in [-5i16, 1, 400] {
        intset.extend_from_slice(&v.to_le_bytes());
    }
    key(&mut f, TYPE_SET_INTSET, b"intset", &intset);
    // zipmap: count, (len field len free value)*, end
    let zipmap = [
        2, 1, b'a', 1, 0, b'1', 2, b'b', b'b', 3, 1, b'x', b'y', b'z', 0, 0xff,
    ];
    key(&mut f, TYPE_HASH_ZIPMAP, b"zipmap", &zipmap);
    // quicklist v1 (ziplist nodes) and v2 (packed + plain nodes)
    f.push(TYPE_LIST_QUICKLIST);
    put_string(&mut f, b"ql1", false);
    put_len(&mut f, 2);
    put_string(&mut f, &ziplist(&[b"1", b"2"]), false);
    put_string(&mut f, &ziplist(&[b"three"]), false);
    f.push(TYPE_LIST_QUICKLIST_2);
    put_string(&mut f, b"ql2", false);
    put_len(&mut f, 2);
    put_len(&mut f, QUICKLIST_PACKED);
    put_string(&mut f, &listpack_build([&b"p1"[..], b"p2"]), false);
    put_len(&mut f, QUICKLIST_PLAIN);
    put_string(&mut f, b"plain-element", false);
    // old text-double zset and plain list
    f.push(TYPE_ZSET);
    put_string(&mut f, b"oldzset", false);
    put_len(&mut f, 2);
    put_string(&mut f, b"a", false);
    f.push(3);
    f.extend_from_slice(b"1.5");
    put_string(&mut f, b"b", false);
    f.push(254);
    f.push(TYPE_LIST);
    put_string(&mut f, b"oldlist", false);
    put_len(&mut f, 1);
    put_string(&mut f, b"only", false);
    // old seconds expiry
    f.push(OP_EXPIRETIME);
    f.extend_from_slice(&4_000_000_000u32.to_le_bytes());
    f.push(TYPE_STRING);
    put_string(&mut f, b"secs", false);
    put_string(&mut f, b"v", false);
    f.push(OP_EOF);
    if ver >= 5 {
        let crc = crate::crc64::crc64(0, &f);
        f.extend_from_slice(&crc.to_le_bytes());
    }
    f
}

#[test]
fn every_compact_encoding_loads() {
    for ver in [4, 9, 11, 12] {
        let f = compact_encodings_file(ver);
        let snap = parse(&f, 16).unwrap_or_else(|e| panic!("v{ver}: {e}"));
        let got: BTreeMap<Vec<u8>, (String, Vec<Vec<u8>>)> = snap
            .keys
            .iter()
            .map(|k| (k.key.clone(), canon(&k.value)))
            .collect();
        let v = |t: &str, items: &[&str]| {
            (
                t.to_string(),
                items
                    .iter()
                    .map(|s| s.as_bytes().to_vec())
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(got[&b"zl-list"[..]], v("list", &["a", "7", "-300", "bee"]));
        assert_eq!(got[&b"zl-hash"[..]], v("hash", &["f1=v1", "f2=2"]));
        assert_eq!(got[&b"zl-zset"[..]], v("zset", &["m1=1.5", "m2=3"]));
        assert_eq!(got[&b"lp-hash"[..]], v("hash", &["f=v", "g=w"]));
        assert_eq!(got[&b"lp-zset"[..]], v("zset", &["a=-2.5", "b=inf"]));
        assert_eq!(got[&b"lp-set"[..]], v("set", &["x", "y"]));
        assert_eq!(got[&b"intset"[..]], v("set", &["-5", "1", "400"]));
        assert_eq!(got[&b"zipmap"[..]], v("hash", &["a=1", "bb=xyz"]));
        assert_eq!(got[&b"ql1"[..]], v("list", &["1", "2", "three"]));
        assert_eq!(got[&b"ql2"[..]], v("list", &["p1", "p2", "plain-element"]));
        assert_eq!(got[&b"oldzset"[..]], v("zset", &["a=1.5", "b=inf"]));
        assert_eq!(got[&b"oldlist"[..]], v("list", &["only"]));
        let secs = snap.keys.iter().find(|k| k.key == b"secs").unwrap();
        assert_eq!(secs.expire_at_ms, Some(4_000_000_000_000));
    }
}

#[test]
fn dump_payload_round_trip_and_footer_checks() {
    let ks = sample_keyspace();
    let mut l = ks.lock_all(1000);
    let mut n = 0;
    for db in 0..16 {
        l.for_each_key(db, |_, e| {
            let p = dump_payload(&e.value, true).unwrap();
            assert_eq!(&p[p.len() - 10..p.len() - 8], &[10, 0]);
            let back = restore_payload(&p).unwrap();
            assert_eq!(canon(&back), canon(&e.value));
            let mut bad = p.clone();
            bad[0] ^= 1;
            assert_eq!(
                restore_payload(&bad).unwrap_err(),
                RestoreError::VersionOrChecksum
            );
            n += 1;
        });
    }
    assert!(n > 10);
    // A valid footer over garbage is a format error, not a checksum error.
    let mut junk = vec![TYPE_SET, 5, 1];
    junk.extend_from_slice(&[10, 0]);
    let crc = crate::crc64::crc64(0, &junk);
    junk.extend_from_slice(&crc.to_le_bytes());
    assert!(matches!(
        restore_payload(&junk),
        Err(RestoreError::BadFormat(_))
    ));
    // Version 13 is refused like a bad checksum, as Redis does for newer versions.
    let mut future = dump_payload(&Value::from_bytes(b"x"), false).unwrap();
    let body = future.len() - 10;
    future[body] = 13;
    let crc = crate::crc64::crc64(0, &future[..future.len() - 8]);
    let at = future.len() - 8;
    future[at..].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        restore_payload(&future).unwrap_err(),
        RestoreError::VersionOrChecksum
    );
}

/// Mutates `buf` randomly; with `fix_crc` the trailer is recomputed so the
/// structural parsers, not the checksum, meet the damage.
fn mutate(rng: &mut impl Rng, buf: &[u8], fix_crc: bool, payload: bool) -> Vec<u8> {
    let mut m = buf.to_vec();
    match rng.gen_range(0..4) {
        0 => {
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..m.len());
                m[i] = rng.gen();
            }
        }
        1 => {
            let i = rng.gen_range(0..m.len());
            m[i] ^= 1 << rng.gen_range(0..8);
        }
        2 => {
            let cut = rng.gen_range(0..m.len());
            m.truncate(cut);
        }
        _ => {
            let i = rng.gen_range(0..m.len());
            let junk: Vec<u8> = (0..rng.gen_range(1..6)).map(|_| rng.gen()).collect();
            m.splice(i..i, junk);
        }
    }
    if fix_crc && m.len() > 18 {
        let n = m.len();
        let crc = crate::crc64::crc64(0, &m[..n - 8]);
        m[n - 8..].copy_from_slice(&crc.to_le_bytes());
        if payload {
            // keep the version sane so the body gets parsed
            m[n - 10] = 10;
            m[n - 9] = 0;
            let crc = crate::crc64::crc64(0, &m[..n - 8]);
            m[n - 8..].copy_from_slice(&crc.to_le_bytes());
        }
    }
    m
}

#[test]
fn random_mutations_never_panic() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_cafe);
    let files = [
        save_to_vec(&sample_keyspace(), &SaveOptions::default()),
        compact_encodings_file(10),
    ];
    let mut refused = 0;
    for f in &files {
        for i in 0..1500 {
            let m = mutate(&mut rng, f, i % 2 == 0, false);
            if parse(&m, 16).is_err() {
                refused += 1;
            }
        }
    }
    assert!(refused > 1000, "only {refused} mutations refused");
    let ks = sample_keyspace();
    let mut l = ks.lock_all(1000);
    let mut payloads = Vec::new();
    l.for_each_key(0, |_, e| {
        payloads.push(dump_payload(&e.value, true).unwrap())
    });
    for p in &payloads {
        for i in 0..100 {
            let m = mutate(&mut rng, p, i % 2 == 0, true);
            let _ = restore_payload(&m);
        }
    }
}

/// The two-core loader must agree with parse + install, whatever follows
/// the RDB (an AOF base continues with commands) and with or without a
/// checksum.
#[test]
fn load_into_agrees_with_parse_and_install() {
    let ks = sample_keyspace();
    let want = contents(&ks);
    for checksum in [true, false] {
        let opts = SaveOptions {
            checksum,
            ..SaveOptions::default()
        };
        let buf = save_to_vec(&ks, &opts);
        let mut with_log = buf.clone();
        with_log.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        for file in [&buf, &with_log] {
            let fresh = Keyspace::new(16);
            let (snap, st) = load_into(file, &fresh, 1000, true).unwrap();
            assert_eq!(snap.len, buf.len());
            assert_eq!(snap.version, 10);
            assert_eq!(st.loaded, want.len());
            assert_eq!(contents(&fresh), want, "checksum={checksum}");
        }
    }
}

#[test]
fn load_into_skips_expired_keys_unless_told_not_to() {
    let ks = Keyspace::new(1);
    {
        let mut l = ks.lock_all(0);
        for (k, at) in [(&b"old"[..], 500), (b"new", 5000)] {
            l.set(0, k, Value::from_bytes(b"1"));
            l.set_expire(0, k, at);
        }
    }
    let mut buf = Vec::new();
    write_snapshot(&mut buf, &mut ks.lock_all(0), &SaveOptions::default()).unwrap();
    let fresh = Keyspace::new(1);
    let (_, st) = load_into(&buf, &fresh, 1000, true).unwrap();
    assert_eq!(
        st,
        InstallStats {
            loaded: 1,
            expired_skipped: 1
        }
    );
    assert_eq!(fresh.counts()[0], (1, 1));
    assert_eq!(fresh.earliest_deadline(), Some(5000));
    let base = Keyspace::new(1);
    let (_, st) = load_into(&buf, &base, 1000, false).unwrap();
    assert_eq!(st.loaded, 2);
    assert_eq!(base.counts()[0], (2, 2));
    assert_eq!(base.earliest_deadline(), Some(500));
}

/// A string record `key` = `val` in the current database.
fn put_str_record(f: &mut Vec<u8>, key: &[u8], val: &[u8]) {
    f.push(TYPE_STRING);
    put_string(f, key, false);
    put_string(f, val, false);
}

fn finish_file(mut f: Vec<u8>) -> Vec<u8> {
    f.push(OP_EOF);
    let crc = crate::crc64::crc64(0, &f);
    f.extend_from_slice(&crc.to_le_bytes());
    f
}

/// As in Redis, a key twice in one database is a corrupt file; the loader
/// names it and its offset, and leaves the keyspace empty.
#[test]
fn load_into_refuses_a_duplicate_key_and_keeps_nothing() {
    let mut f = b"REDIS0010".to_vec();
    f.extend_from_slice(&[OP_SELECTDB, 0, OP_RESIZEDB, 3, 0]);
    for i in 0..3000 {
        put_str_record(&mut f, format!("k{i}").as_bytes(), b"v");
    }
    let dup_at = f.len();
    put_str_record(&mut f, b"k17", b"again");
    // The same name in another database is a different key.
    f.extend_from_slice(&[OP_SELECTDB, 1]);
    put_str_record(&mut f, b"k1", b"v");
    let good = finish_file(f[..dup_at].to_vec());
    let bad = finish_file(f);
    let ks = Keyspace::new(16);
    let e = load_into(&bad, &ks, 0, true).unwrap_err();
    assert!(e.reason.contains("duplicate key 'k17' in DB 0"), "{e}");
    assert_eq!(e.offset, dup_at);
    assert!(ks.counts().iter().all(|&(n, _)| n == 0));
    // The staged path refuses nothing here (it replaces), but the loader's
    // good prefix loads whole.
    let (_, st) = load_into(&good, &ks, 0, true).unwrap();
    assert_eq!(st.loaded, 3000);
    let mut other_db = good[..good.len() - 9].to_vec();
    other_db.extend_from_slice(&[OP_SELECTDB, 1]);
    put_str_record(&mut other_db, b"k1", b"v");
    let ks = Keyspace::new(16);
    let (_, st) = load_into(&finish_file(other_db), &ks, 0, true).unwrap();
    assert_eq!(st.loaded, 3001);
}

#[test]
fn load_into_refuses_damage_and_keeps_nothing() {
    let buf = save_to_vec(&sample_keyspace(), &SaveOptions::default());
    let at = buf.windows(4).position(|w| w == b"item").unwrap() + 2;
    let mut bad = buf.clone();
    bad[at] ^= 0x20;
    let ks = Keyspace::new(16);
    let e = load_into(&bad, &ks, 1000, true).unwrap_err();
    assert!(e.reason.contains("checksum"), "{e}");
    assert_eq!(e.offset, buf.len() - 8);
    assert!(ks.counts().iter().all(|&(n, _)| n == 0));
    // Random damage: refused exactly when parse refuses, and then nothing
    // stays loaded.
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x10ad);
    for i in 0..300 {
        let m = mutate(&mut rng, &buf, i % 2 == 0, false);
        let ks = Keyspace::new(16);
        let staged = parse(&m, 16).map(|s| s.len);
        match load_into(&m, &ks, 1000, true) {
            Ok((snap, _)) => assert_eq!(staged, Ok(snap.len)),
            Err(e) => {
                // A duplicate key is the one thing only the loader refuses.
                assert!(staged.is_err() || e.reason.contains("duplicate key"), "{e}");
                assert!(ks.counts().iter().all(|&(n, _)| n == 0));
            }
        }
    }
    // A keyspace with data is never touched.
    let busy = sample_keyspace();
    let before = contents(&busy);
    assert!(load_into(&buf, &busy, 1000, true).is_err());
    assert_eq!(contents(&busy), before);
}

/// Walks snapshot `generation` to its end; the file `sink` wrote.
fn finish_snapshot(ks: &Keyspace, sink: &RdbSink, generation: u64) -> Vec<u8> {
    while ks.snapshot_step(generation, 64) == crate::keyspace::SnapshotProgress::More {}
    let fs = crate::fs::SimFs::new(1);
    let path = std::path::Path::new("/snap.rdb");
    let file: std::sync::Arc<dyn crate::fs::FsFile> =
        std::sync::Arc::from(fs.create(path).unwrap());
    sink.finish(&file).unwrap();
    fs.read(path).unwrap()
}

/// A fork-free snapshot's file starts with RESIZEDB for each database with
/// keys (so loaders size their tables once) and loads back whole.
#[test]
fn snapshot_file_carries_resizedb_hints() {
    let ks = sample_keyspace();
    {
        let mut l = ks.lock_all(1000);
        l.set(3, b"other-db", Value::from_bytes(b"x"));
    }
    let want = contents(&ks);
    let sink = std::sync::Arc::new(RdbSink::new(1000, SaveOptions::default()));
    let generation = ks.begin_snapshot(sink.clone(), || {}).unwrap();
    let buf = finish_snapshot(&ks, &sink, generation);
    let counts = ks.counts();
    let mut hints = Vec::new();
    parse_records(
        &buf,
        16,
        &mut |rec| {
            if let Record::Resize { db, keys } = rec {
                hints.push((db, keys as usize));
            }
            Ok(())
        },
        &mut |n| crate::crc64::crc64(0, &buf[..n]),
    )
    .unwrap();
    let with_keys: Vec<(usize, usize)> = (0..16)
        .filter(|&db| counts[db].0 > 0)
        .map(|db| (db, counts[db].0))
        .collect();
    assert!(with_keys.len() >= 2);
    assert_eq!(hints, with_keys);
    let fresh = Keyspace::new(16);
    load_into(&buf, &fresh, 1000, true).unwrap();
    assert_eq!(contents(&fresh), want);
}

/// A bucket a command touches during a snapshot is written without LZF (the
/// client waits for it); buckets the walker reaches are compressed. Both load
/// back with their contents at T.
#[test]
fn touched_buckets_are_written_uncompressed() {
    let ks = Keyspace::new(1);
    let old = vec![b'v'; 100];
    {
        let mut l = ks.lock_all(1000);
        l.set(0, b"touched", Value::from_bytes(&old));
        l.set(0, b"walked", Value::from_bytes(&old));
    }
    let want = contents(&ks);
    let sink = std::sync::Arc::new(RdbSink::new(1000, SaveOptions::default()));
    let generation = ks.begin_snapshot(sink.clone(), || {}).unwrap();
    ks.lock_key(b"touched", 1000)
        .set(0, b"touched", Value::from_bytes(b"new"));
    let buf = finish_snapshot(&ks, &sink, generation);
    // The raw 100 bytes appear once: the touched key's value at T. The
    // walked key's identical value went through LZF.
    let raw = buf.windows(old.len()).filter(|w| *w == &old[..]).count();
    assert_eq!(raw, 1);
    let fresh = Keyspace::new(1);
    load_into(&buf, &fresh, 1000, true).unwrap();
    assert_eq!(contents(&fresh), want);
}
