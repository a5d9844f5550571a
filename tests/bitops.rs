//! BITCOUNT, BITPOS, BITOP, BITFIELD and BITFIELD_RO over real sockets, with
//! the expected replies written out and, where redis-server is installed,
//! compared reply for reply with it. Random streams of bit commands are in
//! tests/differential.rs.

mod common;
mod compare;

use compare::Pair;

#[test]
fn bitcount_counts_whole_strings_and_byte_or_bit_ranges() {
    let mut p = Pair::new();
    p.table(&[
        ("BITCOUNT nokey", ":0"),
        ("BITCOUNT nokey 0 1000 bit", ":0"),
        // A missing key answers 0 before its range is even parsed.
        ("BITCOUNT nokey x", ":0"),
        ("SET s foobar", "+OK"),
        ("BITCOUNT s", ":26"),
        ("BITCOUNT s 0 -1 bit", ":26"),
        ("BITCOUNT s 1 1", ":6"),
        ("BITCOUNT s 5 30 bit", ":17"),
        ("BITCOUNT s -2 -1", ":7"),
        ("BITCOUNT s 4 10", ":7"),
        ("BITCOUNT s 6 10", ":0"),
        ("BITCOUNT s 48 87 bit", ":0"),
        ("BITCOUNT s -6 -7", ":0"),
        ("BITCOUNT s -6 -15 bit", ":0"),
        ("BITCOUNT s 0 4294967296", ":26"),
        ("SET m ab", "+OK"),
        ("BITCOUNT m 1 -1", ":3"),
        ("SET w __PPxxxxxxxxxxxxxxxxRR__", "+OK"),
        ("BITCOUNT w 2 -3", ":74"),
        ("BITCOUNT s 0", "-ERR syntax error"),
        ("BITCOUNT s 0 1 hello", "-ERR syntax error"),
        ("BITCOUNT s 0 1 bit extra", "-ERR syntax error"),
        (
            "BITCOUNT s a 1",
            "-ERR value is not an integer or out of range",
        ),
        ("RPUSH l a", ":1"),
        (
            "BITCOUNT l",
            "-WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (
            "BITCOUNT",
            "-ERR wrong number of arguments for 'bitcount' command",
        ),
    ]);
}

#[test]
fn bitpos_finds_set_and_clear_bits_in_ranges() {
    let mut p = Pair::new();
    p.table(&[
        ("BITPOS nokey 0", ":0"),
        ("BITPOS nokey 1", ":-1"),
        ("BITPOS nokey 2", "-ERR The bit argument must be 1 or 0."),
        (
            "BITPOS nokey x",
            "-ERR value is not an integer or out of range",
        ),
        ("SETBIT s 0 1", ":0"),
        ("SETBIT s 1 1", ":0"),
        ("SETBIT s 2 1", ":0"),
        ("SETBIT s 3 1", ":0"),
        ("SETBIT s 4 1", ":0"),
        ("SETBIT s 5 1", ":0"),
        ("SETBIT s 6 1", ":0"),
        ("SETBIT s 7 1", ":0"),
        ("SETBIT s 23 1", ":0"),
        ("GET s", "\"\\xff\\x00\\x01\""),
        ("BITPOS s 0", ":8"),
        ("BITPOS s 1", ":0"),
        ("BITPOS s 1 1", ":23"),
        ("BITPOS s 1 1 1", ":-1"),
        ("BITPOS s 0 2", ":16"),
        ("BITPOS s 1 9 22 bit", ":-1"),
        ("BITPOS s 1 9 23 bit", ":23"),
        ("BITPOS s 0 0 7 bit", ":-1"),
        ("BITPOS s 0 5 8 bit", ":8"),
        ("BITPOS s 1 -1", ":23"),
        ("BITPOS s 1 -1 -1 byte", ":23"),
        ("BITPOS s 1 3", ":-1"),
        (
            "BITPOS s 0 0 bit",
            "-ERR value is not an integer or out of range",
        ),
        ("BITPOS s 0 0 -1 word", "-ERR syntax error"),
        ("BITPOS s 0 0 -1 bit 1", "-ERR syntax error"),
        ("RPUSH l a", ":1"),
        (
            "BITPOS l 0",
            "-WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
    ]);
    // With no end given the string goes on with zero bits, so a string of
    // all ones has its first clear bit right after it; an explicit end
    // says the range stops there.
    p.table(&[
        ("BITFIELD ones SET u16 0 65535", "[:0]"),
        ("BITPOS ones 0", ":16"),
        ("BITPOS ones 0 0", ":16"),
        ("BITPOS ones 0 0 -1", ":-1"),
        ("BITPOS ones 0 0 15 bit", ":-1"),
    ]);
}

#[test]
fn bitop_combines_zero_padded_sources_and_deletes_an_empty_result() {
    let mut p = Pair::new();
    p.table(&[
        ("SET a foobar", "+OK"),
        ("SET b abcdef", "+OK"),
        ("SET c 1", "+OK"),
        ("BITOP AND r a b", ":6"),
        ("GET r", "\"`bc`ab\""),
        ("BITOP or r a b", ":6"),
        ("GET r", "\"goofev\""),
        ("BITOP XOR r a b", ":6"),
        ("GET r", "\"\\x07\\r\\x0c\\x06\\x04\\x14\""),
        ("BITOP XOR r a c", ":6"),
        ("GET r", "\"Woobar\""),
        ("BITOP AND r a c missing", ":6"),
        ("GET r", "\"\\x00\\x00\\x00\\x00\\x00\\x00\""),
        ("BITOP NOT r c", ":1"),
        ("GET r", "\"\\xce\""),
        ("BITOP NOT a a", ":6"),
        ("BITOP NOT a a", ":6"),
        ("GET a", "\"foobar\""),
        ("EXPIRE r 100", ":1"),
        ("BITOP OR r c", ":1"),
        ("TTL r", ":-1"),
        ("BITOP OR r missing1 missing2", ":0"),
        ("EXISTS r", ":0"),
        ("BITOP OR r c", ":1"),
        (
            "BITOP OR r",
            "-ERR wrong number of arguments for 'bitop' command",
        ),
        (
            "BITOP NOT r a b",
            "-ERR BITOP NOT must be called with a single source key.",
        ),
        ("BITOP NAND r a b", "-ERR syntax error"),
        ("RPUSH l x", ":1"),
        (
            "BITOP AND r a l",
            "-WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
    ]);
}

#[test]
fn bitfield_reads_writes_and_overflows_like_redis() {
    let mut p = Pair::new();
    p.table(&[
        ("BITFIELD bits SET i8 0 -100", "[:0]"),
        ("BITFIELD bits GET i8 0 GET u8 0", "[:-100, :156]"),
        ("BITFIELD bits SET u8 #1 255 GET u8 8 GET i4 #2", "[:0, :255, :-1]"),
        ("BITFIELD bits", "[]"),
        ("BITFIELD nokey GET u8 0 GET i64 100", "[:0, :0]"),
        ("EXISTS nokey", ":0"),
        ("BITFIELD mystring SET i8 0 10 SET i8 64 10 INCRBY i8 10 99900", "[:0, :0, :60]"),
        ("SET n 1", "+OK"),
        ("BITFIELD n GET u1 0 GET u8 0", "[:0, :49]"),
        // Unsigned overflow: wrap (default), saturate, fail.
        ("BITFIELD u SET u2 0 3 INCRBY u2 0 1", "[:0, :0]"),
        ("BITFIELD u OVERFLOW SAT INCRBY u2 0 7 INCRBY u2 0 -9", "[:3, :0]"),
        ("BITFIELD u OVERFLOW FAIL INCRBY u2 0 4 INCRBY u2 0 3", "[nil, :3]"),
        ("BITFIELD u OVERFLOW SAT SET u8 8 -1 GET u8 8", "[:0, :255]"),
        // Signed overflow, and OVERFLOW applying to the operations after it.
        ("BITFIELD i SET i8 0 127 INCRBY i8 0 1", "[:0, :-128]"),
        ("BITFIELD i OVERFLOW SAT INCRBY i8 0 -1 OVERFLOW WRAP INCRBY i8 0 -2", "[:-128, :126]"),
        ("BITFIELD i OVERFLOW FAIL SET i8 0 128 GET i8 0", "[nil, :126]"),
        ("BITFIELD i SET i64 8 9223372036854775807 INCRBY i64 8 1", "[:0, :-9223372036854775808]"),
        ("BITFIELD_RO i GET i8 0 GET u4 #1", "[:126, :14]"),
        ("BITFIELD_RO i", "[]"),
        ("BITFIELD_RO i SET u8 0 100 GET u8 0", "-ERR BITFIELD_RO only supports the GET subcommand"),
        ("BITFIELD i GET u64 0", "-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is."),
        ("BITFIELD i GET i65 0", "-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is."),
        ("BITFIELD i GET u8 -1", "-ERR bit offset is not an integer or out of range"),
        ("BITFIELD i GET u8 4294967296", "-ERR bit offset is not an integer or out of range"),
        ("BITFIELD i SET u8 0 x", "-ERR value is not an integer or out of range"),
        ("BITFIELD i OVERFLOW BAD", "-ERR Invalid OVERFLOW type specified"),
        ("BITFIELD i GET u8", "-ERR syntax error"),
        ("BITFIELD i FOO u8 0", "-ERR syntax error"),
        ("RPUSH l x", ":1"),
        ("BITFIELD l GET u8 0", "-WRONGTYPE Operation against a key holding the wrong kind of value"),
        ("BITFIELD_RO l SET u8 0 1", "-ERR BITFIELD_RO only supports the GET subcommand"),
    ]);
    // An empty string source is as good as a missing one.
    p.same(&["SET", "empty", ""]);
    p.is(&["BITOP", "OR", "r", "missing", "empty"], ":0");
    p.is(&["EXISTS", "r"], ":0");
}

/// Like Redis, SETBIT and BITFIELD count as writes (dirty counter, AOF,
/// WATCH) only when they create, grow or change the string.
#[test]
fn unchanged_bits_are_not_writes() {
    let mut p = Pair::new();
    let changes = |p: &mut Pair| {
        let info = p.c.cmd(&["INFO", "persistence"]).bulk_text();
        let line = info
            .lines()
            .find(|l| l.starts_with("rdb_changes_since_last_save:"))
            .expect("INFO persistence has rdb_changes_since_last_save");
        line.split(':')
            .nth(1)
            .unwrap()
            .trim()
            .parse::<i64>()
            .unwrap()
    };
    let start = changes(&mut p);
    p.is(&["SETBIT", "foo", "0", "0"], ":0");
    p.is(&["BITFIELD", "foo2", "SET", "i5", "0", "0"], "[:0]");
    assert_eq!(changes(&mut p), start + 2, "creating keys is a change");
    p.is(&["SETBIT", "foo", "0", "0"], ":0");
    p.is(&["BITFIELD", "foo2", "SET", "i5", "0", "0"], "[:0]");
    assert_eq!(changes(&mut p), start + 2, "rewriting the same bits is not");
    for bit in ["1", "1", "0", "0"] {
        p.same(&["SETBIT", "foo", "0", bit]);
        p.same(&["BITFIELD", "foo2", "SET", "i5", "0", bit]);
    }
    assert_eq!(changes(&mut p), start + 6);
    p.is(&["SETBIT", "foo", "90", "0"], ":0");
    assert_eq!(changes(&mut p), start + 7, "growing the string is a change");

    // A WATCHed key survives a SETBIT that changes nothing.
    let (mut watcher, _) = p.connect();
    watcher.cmd(&["WATCH", "foo"]);
    p.is(&["SETBIT", "foo", "0", "0"], ":0");
    watcher.cmd(&["MULTI"]);
    watcher.cmd(&["GET", "foo"]);
    assert!(watcher.cmd(&["EXEC"]).render().starts_with('['));
    watcher.cmd(&["WATCH", "foo"]);
    p.is(&["SETBIT", "foo", "0", "1"], ":0");
    watcher.cmd(&["MULTI"]);
    watcher.cmd(&["GET", "foo"]);
    assert_eq!(watcher.cmd(&["EXEC"]).render(), "nil*");
}
