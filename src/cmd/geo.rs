//! Geo commands: GEOADD, GEOPOS, GEODIST, GEOHASH, GEOSEARCH(STORE) and the
//! GEORADIUS family.
//!
//! A geo set is an ordinary sorted set whose scores are 52-bit interleaved
//! geohashes, the very numbers Redis stores, so RDB/DUMP payloads, ZSCORE and
//! ZRANGE agree with Redis. Searches cover the query area with the geohash
//! box of the centre and its eight neighbours, at the precision Redis picks,
//! and scan each box's score range in box order and zset order; sorting uses
//! the same algorithms Redis's sorts do, so even ties come out in its order.
//! See docs/geo.md.

use cairn_storage::types::zset::ZSet;
use cairn_storage::Value;

use super::long_double::Ext;
use super::{event, parse_float, parse_int, read_typed, Command, Ctx, KeySpec, *};
use crate::resp::{Argv, Reply};

const K1: KeySpec = KeySpec::Range(1, 1, 1);
const G: &str = "geo";

pub const COMMANDS: &[Command] = &[
    Command::new("geoadd", -5, WRITE | DENYOOM, K1, G, geoadd),
    Command::new("geodist", -4, READONLY, K1, G, geodist),
    Command::new("geohash", -2, READONLY, K1, G, geohash),
    Command::new("geopos", -2, READONLY, K1, G, geopos),
    Command::new("geosearch", -7, READONLY, K1, G, geosearch),
    Command::new(
        "geosearchstore",
        -8,
        WRITE | DENYOOM,
        KeySpec::Range(1, 2, 1),
        G,
        geosearchstore,
    ),
    Command::new(
        "georadius",
        -6,
        WRITE | DENYOOM,
        KeySpec::Custom(georadius_keys),
        G,
        georadius,
    ),
    Command::new(
        "georadiusbymember",
        -5,
        WRITE | DENYOOM,
        KeySpec::Custom(georadiusbymember_keys),
        G,
        georadiusbymember,
    ),
    Command::new("georadius_ro", -6, READONLY, K1, G, georadius_ro),
    Command::new(
        "georadiusbymember_ro",
        -5,
        READONLY,
        K1,
        G,
        georadiusbymember_ro,
    ),
];

/// The source key and every STORE/STOREDIST destination after the fixed
/// arguments (Redis's keyword key specs; the last one is the one written).
fn store_keys(a: &Argv, from: usize) -> Vec<usize> {
    let mut v = vec![1];
    let mut i = from;
    while i + 1 < a.len() {
        let w = a.get(i);
        if w.eq_ignore_ascii_case(b"store") || w.eq_ignore_ascii_case(b"storedist") {
            v.push(i + 1);
            i += 2;
        } else {
            i += 1;
        }
    }
    v
}
fn georadius_keys(a: &Argv) -> Vec<usize> {
    store_keys(a, 6)
}
fn georadiusbymember_keys(a: &Argv) -> Vec<usize> {
    store_keys(a, 5)
}

// --- geohash ------------------------------------------------------------------

pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;
pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;
/// 26 steps of one longitude and one latitude bit: 52 bits.
pub const STEP_MAX: u8 = 26;

const EARTH_RADIUS_IN_METERS: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;

/// A geohash of `step` bits per coordinate; longitude bits are the odd
/// bits, latitude bits the even ones. All zeros means "no box".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hash {
    pub bits: u64,
    pub step: u8,
}

impl Hash {
    fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

impl Range {
    fn is_zero(&self) -> bool {
        self.min == 0.0 && self.max == 0.0
    }
}

const WGS84_LONG: Range = Range {
    min: LONG_MIN,
    max: LONG_MAX,
};
const WGS84_LAT: Range = Range {
    min: LAT_MIN,
    max: LAT_MAX,
};

/// The cell a hash names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    pub hash: Hash,
    pub lon: Range,
    pub lat: Range,
}

/// Puts the 32 bits of `v` on the even bit positions of a u64.
fn spread(v: u32) -> u64 {
    let mut x = v as u64;
    x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// Gathers the even bits of `v` (the inverse of [`spread`]).
fn gather(v: u64) -> u32 {
    let mut x = v & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0f0f_0f0f_0f0f_0f0f;
    x = (x | (x >> 4)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x >> 8)) & 0x0000_ffff_0000_ffff;
    ((x | (x >> 16)) & 0xffff_ffff) as u32
}

/// Latitude on the even bits, longitude on the odd ones.
fn interleave(lat: u32, lon: u32) -> u64 {
    spread(lat) | (spread(lon) << 1)
}

/// (latitude part, longitude part) of an interleaved hash.
fn deinterleave(bits: u64) -> (u32, u32) {
    (gather(bits), gather(bits >> 1))
}

/// Encodes a point with `step` bits per coordinate within the given ranges;
/// None outside them or outside the WGS84 limits Redis indexes.
pub fn encode(lon_r: Range, lat_r: Range, lon: f64, lat: f64, step: u8) -> Option<Hash> {
    if step == 0 || step > 32 || lat_r.is_zero() || lon_r.is_zero() {
        return None;
    }
    if !(LONG_MIN..=LONG_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if lat < lat_r.min || lat > lat_r.max || lon < lon_r.min || lon > lon_r.max {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_off = (lat - lat_r.min) / (lat_r.max - lat_r.min) * scale;
    let lon_off = (lon - lon_r.min) / (lon_r.max - lon_r.min) * scale;
    // C converts through a 64-bit integer and keeps the low 32 bits.
    let to_u32 = |v: f64| (v as i64) as u32;
    Some(Hash {
        bits: interleave(to_u32(lat_off), to_u32(lon_off)),
        step,
    })
}

/// The WGS84 hash Redis stores: 26 steps.
pub fn encode_wgs84(lon: f64, lat: f64, step: u8) -> Option<Hash> {
    encode(WGS84_LONG, WGS84_LAT, lon, lat, step)
}

/// The cell of `hash` within the given ranges.
pub fn decode(lon_r: Range, lat_r: Range, hash: Hash) -> Option<Area> {
    if hash.is_zero() || lat_r.is_zero() || lon_r.is_zero() {
        return None;
    }
    let (ilat, ilon) = deinterleave(hash.bits);
    let div = (1u64 << hash.step.min(63)) as f64;
    let lat_scale = lat_r.max - lat_r.min;
    let lon_scale = lon_r.max - lon_r.min;
    // The +1 is 32-bit arithmetic in Redis, so it wraps.
    Some(Area {
        hash,
        lat: Range {
            min: lat_r.min + (ilat as f64 / div) * lat_scale,
            max: lat_r.min + (ilat.wrapping_add(1) as f64 / div) * lat_scale,
        },
        lon: Range {
            min: lon_r.min + (ilon as f64 / div) * lon_scale,
            max: lon_r.min + (ilon.wrapping_add(1) as f64 / div) * lon_scale,
        },
    })
}

/// The centre of a cell, clamped to the indexed limits: [lon, lat].
fn area_center(a: &Area) -> [f64; 2] {
    let lon = ((a.lon.min + a.lon.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((a.lat.min + a.lat.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    [lon, lat]
}

/// What x86-64 C code gets from `(uint64_t)d` for any double: in range it
/// truncates; out of range it yields what the conversion instructions give.
fn c_double_to_u64(d: f64) -> u64 {
    const TWO63: f64 = 9223372036854775808.0;
    let cvtt = |v: f64| -> i64 {
        if !(-TWO63..TWO63).contains(&v) {
            i64::MIN
        } else {
            v as i64
        }
    };
    // A NaN compares as "not above", so it takes the first path.
    if d < TWO63 || d.is_nan() {
        cvtt(d) as u64
    } else {
        (cvtt(d - TWO63) as u64) ^ (1u64 << 63)
    }
}

/// The [lon, lat] a zset score stands for (Redis's decodeGeohash).
pub fn decode_score(score: f64) -> Option<[f64; 2]> {
    let hash = Hash {
        bits: c_double_to_u64(score),
        step: STEP_MAX,
    };
    decode(WGS84_LONG, WGS84_LAT, hash).map(|a| area_center(&a))
}

/// The 52-bit score of a point (caller checked the coordinates).
pub fn score_of(lon: f64, lat: f64) -> Option<u64> {
    encode_wgs84(lon, lat, STEP_MAX).map(align52)
}

fn align52(h: Hash) -> u64 {
    let shift = 52u32.saturating_sub(h.step as u32 * 2);
    h.bits << shift
}

fn move_x(h: &mut Hash, d: i8) {
    move_along(h, d, 0xaaaa_aaaa_aaaa_aaaa);
}

fn move_y(h: &mut Hash, d: i8) {
    move_along(h, d, 0x5555_5555_5555_5555);
}

/// Moves a hash one cell along the axis whose interleaved bits are `axis`
/// (longitude on the odd bits, latitude on the even ones): the axis bits are
/// incremented or decremented as one number by filling the other axis's
/// bits so the carry passes through them.
fn move_along(h: &mut Hash, d: i8, axis: u64) {
    // A zeroed hash (no cell) has nothing to move.
    if d == 0 || h.step == 0 || h.step > 32 {
        return;
    }
    let shift = 64 - h.step as u32 * 2;
    let mut moved = h.bits & axis;
    let kept = h.bits & !axis;
    let fill = !axis >> shift;
    if d > 0 {
        moved = moved.wrapping_add(fill + 1);
    } else {
        moved |= fill;
        moved = moved.wrapping_sub(fill + 1);
    }
    moved &= axis >> shift;
    h.bits = moved | kept;
}

/// The eight cells around a hash (wrapping at the edges of the map).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Neighbors {
    pub north: Hash,
    pub south: Hash,
    pub east: Hash,
    pub west: Hash,
    pub north_east: Hash,
    pub north_west: Hash,
    pub south_east: Hash,
    pub south_west: Hash,
}

pub fn neighbors(h: Hash) -> Neighbors {
    let moved = |dx: i8, dy: i8| {
        let mut n = h;
        move_x(&mut n, dx);
        move_y(&mut n, dy);
        n
    };
    Neighbors {
        east: moved(1, 0),
        west: moved(-1, 0),
        south: moved(0, -1),
        north: moved(0, 1),
        north_west: moved(-1, 1),
        north_east: moved(1, 1),
        south_east: moved(1, -1),
        south_west: moved(-1, -1),
    }
}

fn deg_rad(a: f64) -> f64 {
    a * (std::f64::consts::PI / 180.0)
}
fn rad_deg(a: f64) -> f64 {
    a / (std::f64::consts::PI / 180.0)
}

/// Bits of precision for a search of this radius (Redis's estimate).
pub fn estimate_steps(range_meters: f64, lat: f64) -> u8 {
    if range_meters == 0.0 {
        return 26;
    }
    let mut range = range_meters;
    let mut step: i32 = 1;
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_IN_METERS * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// Haversine distance in meters, as Redis computes it.
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let lon1r = deg_rad(lon1);
    let lon2r = deg_rad(lon2);
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let lat1r = deg_rad(lat1);
    let lat2r = deg_rad(lat2);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_IN_METERS * a.sqrt().asin()
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Circle { radius: f64 },
    Rect { width: f64, height: f64 },
}

/// A search area: centre [lon, lat], unit-to-meters factor and shape (in
/// the unit).
#[derive(Debug, Clone, Copy)]
struct Shape {
    xy: [f64; 2],
    conversion: f64,
    kind: Kind,
}

impl Shape {
    /// [min lon, min lat, max lon, max lat].
    fn bounding_box(&self) -> [f64; 4] {
        let [lon, lat] = self.xy;
        let (h, w) = match self.kind {
            Kind::Circle { radius } => (radius, radius),
            Kind::Rect { width, height } => (height / 2.0, width / 2.0),
        };
        let height = self.conversion * h;
        let width = self.conversion * w;
        let lat_delta = rad_deg(height / EARTH_RADIUS_IN_METERS);
        let top = rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(lat + lat_delta).cos());
        let bottom = rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(lat - lat_delta).cos());
        let delta = if lat < 0.0 { bottom } else { top };
        [lon - delta, lat - lat_delta, lon + delta, lat + lat_delta]
    }

    /// Distance from the centre if the point [lon, lat] is inside.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    fn contains(&self, lon: f64, lat: f64) -> Option<f64> {
        let [x1, y1] = self.xy;
        match self.kind {
            Kind::Circle { radius } => {
                let d = distance(x1, y1, lon, lat);
                // Redis rejects only d > radius, so a NaN distance is inside.
                (!(d > radius * self.conversion)).then_some(d)
            }
            Kind::Rect { width, height } => {
                let (w, h) = (width * self.conversion, height * self.conversion);
                if lat_distance(lat, y1) > h / 2.0 {
                    return None;
                }
                if distance(lon, lat, x1, lat) > w / 2.0 {
                    return None;
                }
                Some(distance(x1, y1, lon, lat))
            }
        }
    }
}

/// The nine cells to scan, in Redis's order: centre, N, S, E, W, NE, NW,
/// SE, SW; cells that cannot hold results are zeroed.
fn search_boxes(shape: &Shape) -> [Hash; 9] {
    let [min_lon, min_lat, max_lon, max_lat] = shape.bounding_box();
    let [lon, lat] = shape.xy;
    let radius_meters = match shape.kind {
        Kind::Circle { radius } => radius,
        Kind::Rect { width, height } => {
            ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
        }
    } * shape.conversion;
    let mut steps = estimate_steps(radius_meters, lat);
    let cell = |steps: u8| {
        let hash = encode_wgs84(lon, lat, steps).unwrap_or_default();
        let area = decode(WGS84_LONG, WGS84_LAT, hash);
        (hash, neighbors(hash), area)
    };
    let (mut hash, mut nb, mut area) = cell(steps);
    let dec = |h: Hash| decode(WGS84_LONG, WGS84_LAT, h);
    let too_small = dec(nb.north).is_some_and(|a| a.lat.max < max_lat)
        || dec(nb.south).is_some_and(|a| a.lat.min > min_lat)
        || dec(nb.east).is_some_and(|a| a.lon.max < max_lon)
        || dec(nb.west).is_some_and(|a| a.lon.min > min_lon);
    if steps > 1 && too_small {
        steps -= 1;
        (hash, nb, area) = cell(steps);
    }
    if steps >= 2 {
        if let Some(area) = area {
            let zero = Hash::default();
            if area.lat.min < min_lat {
                nb.south = zero;
                nb.south_west = zero;
                nb.south_east = zero;
            }
            if area.lat.max > max_lat {
                nb.north = zero;
                nb.north_east = zero;
                nb.north_west = zero;
            }
            if area.lon.min < min_lon {
                nb.west = zero;
                nb.south_west = zero;
                nb.north_west = zero;
            }
            if area.lon.max > max_lon {
                nb.east = zero;
                nb.south_east = zero;
                nb.north_east = zero;
            }
        }
    }
    [
        hash,
        nb.north,
        nb.south,
        nb.east,
        nb.west,
        nb.north_east,
        nb.north_west,
        nb.south_east,
        nb.south_west,
    ]
}

/// One search result.
struct Point {
    lon: f64,
    lat: f64,
    dist: f64,
    score: f64,
    member: Vec<u8>,
}

/// Appends the members of `z` with min <= score < max that lie in `shape`,
/// in zset order, stopping once `limit` (0 = none) results are held.
fn points_in_range(
    z: &ZSet,
    min: f64,
    max: f64,
    shape: &Shape,
    out: &mut Vec<Point>,
    limit: usize,
) {
    let start = z.count_score_below(min, false);
    if start >= z.len() {
        return;
    }
    z.for_range(start, z.len() - 1, false, |m, s| {
        if s >= max {
            return false;
        }
        if let Some([lon, lat]) = decode_score(s) {
            if let Some(dist) = shape.contains(lon, lat) {
                out.push(Point {
                    lon,
                    lat,
                    dist,
                    score: s,
                    member: m.to_vec(),
                });
            }
        }
        !(limit > 0 && out.len() >= limit)
    });
}

/// Every member of `z` inside `shape`, in Redis's box-then-zset order.
fn search(z: &ZSet, shape: &Shape, limit: usize) -> Vec<Point> {
    let boxes = search_boxes(shape);
    let mut out = Vec::new();
    let mut last = 0usize;
    for (i, b) in boxes.iter().enumerate() {
        if b.is_zero() {
            continue;
        }
        // Huge areas can make adjacent cells the same: scan each once.
        if last != 0 && *b == boxes[last] {
            continue;
        }
        if limit > 0 && out.len() >= limit {
            break;
        }
        let min = align52(*b);
        let max = align52(Hash {
            bits: b.bits.wrapping_add(1),
            step: b.step,
        });
        points_in_range(z, min as f64, max as f64, shape, &mut out, limit);
        last = i;
    }
    out
}

// --- sorting as Redis does it -------------------------------------------------

/// Redis's distance comparator (not a total order when a distance is NaN,
/// which the sorts below tolerate as C's do).
fn cmp_dist(a: f64, b: f64) -> i32 {
    if a > b {
        1
    } else if a == b {
        0
    } else {
        -1
    }
}

/// glibc's qsort for arrays that fit in memory: a top-down merge sort,
/// left run first on ties.
fn merge_sort(v: &mut [usize], cmp: &dyn Fn(usize, usize) -> i32, tmp: &mut Vec<usize>) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    merge_sort(&mut v[..n1], cmp, tmp);
    merge_sort(&mut v[n1..], cmp, tmp);
    tmp.clear();
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(v[i], v[j]) <= 0 {
            tmp.push(v[i]);
            i += 1;
        } else {
            tmp.push(v[j]);
            j += 1;
        }
    }
    tmp.extend_from_slice(&v[i..n1]);
    let k = tmp.len();
    v[..k].copy_from_slice(tmp);
}

fn med3(v: &[usize], a: usize, b: usize, c: usize, cmp: &dyn Fn(usize, usize) -> i32) -> usize {
    if cmp(v[a], v[b]) < 0 {
        if cmp(v[b], v[c]) < 0 {
            b
        } else if cmp(v[a], v[c]) < 0 {
            c
        } else {
            a
        }
    } else if cmp(v[b], v[c]) > 0 {
        b
    } else if cmp(v[a], v[c]) < 0 {
        a
    } else {
        c
    }
}

fn swap_runs(v: &mut [usize], a: usize, b: usize, n: usize) {
    for k in 0..n {
        v.swap(a + k, b + k);
    }
}

/// Redis's partial quicksort (Bentley-McIlroy with three-way partitioning)
/// that only finishes the partitions overlapping positions `lo..=hi`.
fn partial_qsort(
    v: &mut [usize],
    mut a: usize,
    mut n: usize,
    cmp: &dyn Fn(usize, usize) -> i32,
    lo: usize,
    hi: usize,
) {
    // A partition [s, s+len) matters unless the wanted range lies wholly
    // before or after it.
    let wanted = |s: usize, len: usize| !((lo < s && hi < s) || (lo >= s + len && hi >= s + len));
    loop {
        if n < 7 {
            for pm in a + 1..a + n {
                let mut pl = pm;
                while pl > a && cmp(v[pl - 1], v[pl]) > 0 {
                    v.swap(pl, pl - 1);
                    pl -= 1;
                }
            }
            return;
        }
        let mut pm = a + n / 2;
        if n > 7 {
            let mut pl = a;
            let mut pn = a + n - 1;
            if n > 40 {
                let d = n / 8;
                pl = med3(v, pl, pl + d, pl + 2 * d, cmp);
                pm = med3(v, pm - d, pm, pm + d, cmp);
                pn = med3(v, pn - 2 * d, pn - d, pn, cmp);
            }
            pm = med3(v, pl, pm, pn, cmp);
        }
        v.swap(a, pm);
        let (mut pa, mut pb) = (a + 1, a + 1);
        let (mut pc, mut pd) = (a + n - 1, a + n - 1);
        loop {
            while pb <= pc {
                let r = cmp(v[pb], v[a]);
                if r > 0 {
                    break;
                }
                if r == 0 {
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb <= pc {
                let r = cmp(v[pc], v[a]);
                if r < 0 {
                    break;
                }
                if r == 0 {
                    v.swap(pc, pd);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb > pc {
                break;
            }
            v.swap(pb, pc);
            pb += 1;
            pc -= 1;
        }
        let pn = a + n;
        let r = (pa - a).min(pb - pa);
        swap_runs(v, a, pb - r, r);
        let r = (pd - pc).min(pn - pd - 1);
        swap_runs(v, pb, pn - r, r);
        let r = pb - pa;
        if r > 1 && wanted(a, r) {
            partial_qsort(v, a, r, cmp, lo, hi);
        }
        let r = pd - pc;
        if r > 1 {
            a = pn - r;
            n = r;
            if wanted(a, n) {
                continue;
            }
        }
        return;
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// Orders `points` as Redis does: a full sort when every result is
/// returned, else a partial one that only fixes the first `keep`.
fn sort_points(points: &mut Vec<Point>, sort: Sort, keep: usize) {
    if sort == Sort::None || points.len() < 2 {
        return;
    }
    let dists: Vec<f64> = points.iter().map(|p| p.dist).collect();
    let sign = if sort == Sort::Desc { -1 } else { 1 };
    let cmp = |x: usize, y: usize| sign * cmp_dist(dists[x], dists[y]);
    let mut order: Vec<usize> = (0..points.len()).collect();
    if keep == points.len() {
        merge_sort(&mut order, &cmp, &mut Vec::with_capacity(points.len()));
    } else {
        let n = order.len();
        partial_qsort(&mut order, 0, n, &cmp, 0, keep.saturating_sub(1));
    }
    let mut slots: Vec<Option<Point>> = std::mem::take(points).into_iter().map(Some).collect();
    points.extend(order.into_iter().filter_map(|i| slots[i].take()));
}

// --- argument helpers ---------------------------------------------------------

/// Redis's getDoubleFromObject: strtod over the whole argument; NaN,
/// overflow and underflow to zero are refused.
fn parse_double(a: &[u8]) -> Option<f64> {
    let v = parse_float(a)?;
    let lower = a.to_ascii_lowercase();
    let has_inf = lower.windows(3).any(|w| w == b"inf");
    if v.is_infinite() && !has_inf {
        return None;
    }
    if v == 0.0 {
        let mantissa = lower.split(|&c| c == b'e').next().unwrap_or(&[]);
        if mantissa.iter().any(|c| (b'1'..=b'9').contains(c)) {
            return None;
        }
    }
    Some(v)
}

/// C's "%f".
fn c_fixed6(v: f64) -> String {
    if v.is_nan() {
        return if v.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    format!("{v:.6}")
}

/// Parses a longitude and a latitude; on error the reply is written.
fn lon_lat(c: &mut Ctx, lon: &[u8], lat: &[u8]) -> Option<[f64; 2]> {
    let Some(x) = parse_double(lon) else {
        c.error(NOT_FLOAT);
        return None;
    };
    let Some(y) = parse_double(lat) else {
        c.error(NOT_FLOAT);
        return None;
    };
    if !(LONG_MIN..=LONG_MAX).contains(&x) || !(LAT_MIN..=LAT_MAX).contains(&y) {
        c.error(&format!(
            "ERR invalid longitude,latitude pair {},{}",
            c_fixed6(x),
            c_fixed6(y)
        ));
        return None;
    }
    Some([x, y])
}

/// Meters per unit; None (after the reply) for an unknown unit.
fn unit(c: &mut Ctx, u: &[u8]) -> Option<f64> {
    let f = if u.eq_ignore_ascii_case(b"m") {
        1.0
    } else if u.eq_ignore_ascii_case(b"km") {
        1000.0
    } else if u.eq_ignore_ascii_case(b"ft") {
        0.3048
    } else if u.eq_ignore_ascii_case(b"mi") {
        1609.34
    } else {
        c.error("ERR unsupported unit provided. please use M, KM, FT, MI");
        return None;
    };
    Some(f)
}

/// A non-negative number, or the reply `msg`.
fn non_negative(c: &mut Ctx, a: &[u8], msg: &str) -> Option<f64> {
    match parse_double(a) {
        Some(v) => Some(v),
        None => {
            c.error(msg);
            None
        }
    }
}

/// Redis's fixedpoint_d2string with 4 decimals: llrint of d*10^4, whose
/// out-of-range result on x86 is LLONG_MIN.
pub fn format_distance(d: f64) -> String {
    const TWO63: f64 = 9223372036854775808.0;
    if d == 0.0 {
        return "0.0000".into();
    }
    let scaled = (d * 10000.0).round_ties_even();
    let v: i64 = if scaled.is_nan() || !(-TWO63..TWO63).contains(&scaled) {
        i64::MIN
    } else {
        scaled as i64
    };
    let mag = v.unsigned_abs();
    let digits = format!("{:05}", mag);
    let (int, frac) = digits.split_at(digits.len() - 4);
    format!("{}{}.{}", if v < 0 { "-" } else { "" }, int, frac)
}

fn reply_distance(out: &mut Reply, d: f64) {
    out.bulk(format_distance(d).as_bytes());
}

/// Redis's addReplyHumanLongDouble for a double.
fn reply_coord(out: &mut Reply, v: f64) {
    let text = match Ext::from_f64(v) {
        Some(e) => e.to_human(),
        None => {
            if v.is_nan() {
                "nan".into()
            } else if v > 0.0 {
                "inf".into()
            } else {
                "-inf".into()
            }
        }
    };
    out.double_text(&text);
}

// --- commands -----------------------------------------------------------------

fn geoadd(c: &mut Ctx, a: &Argv) {
    let mut at = 2;
    let (mut nx, mut xx) = (false, false);
    while at < a.len() {
        let w = a.get(at);
        if w.eq_ignore_ascii_case(b"nx") {
            nx = true;
        } else if w.eq_ignore_ascii_case(b"xx") {
            xx = true;
        } else if w.eq_ignore_ascii_case(b"ch") {
            // Passed on to ZADD.
        } else {
            break;
        }
        at += 1;
    }
    let rest = a.len() - at;
    if !rest.is_multiple_of(3) || (nx && xx) {
        return c.error(SYNTAX);
    }
    // GEOADD is ZADD with the scores computed: build that ZADD and run it.
    let mut zadd: Vec<Vec<u8>> = vec![b"zadd".to_vec(), a.get(1).to_vec()];
    for w in a.iter().take(at).skip(2) {
        zadd.push(w.to_vec());
    }
    for i in (at..a.len()).step_by(3) {
        let Some([lon, lat]) = lon_lat(c, a.get(i), a.get(i + 1)) else {
            return;
        };
        let score = score_of(lon, lat).unwrap_or(0);
        zadd.push(score.to_string().into_bytes());
        zadd.push(a.get(i + 2).to_vec());
    }
    let owned = crate::resp::OwnedArgv::from_args(&zadd);
    let before = c.dirty;
    super::zset::zadd(c, &owned.argv());
    // Logged as the ZADD it became, as Redis propagates it.
    if c.dirty > before {
        c.propagate(&zadd);
    }
}

fn geodist(c: &mut Ctx, a: &Argv) {
    let mut to_meter = 1.0;
    if a.len() == 5 {
        match unit(c, a.get(4)) {
            Some(u) => to_meter = u,
            None => return,
        }
    } else if a.len() > 5 {
        return c.error(SYNTAX);
    }
    let db = c.db();
    let z = match read_typed(&mut c.ks, c.out, db, a.get(1), Value::as_zset) {
        Err(()) => return,
        Ok(None) => return c.out.null(),
        Ok(Some(z)) => z,
    };
    let (Some(s1), Some(s2)) = (z.score(a.get(2)), z.score(a.get(3))) else {
        return c.out.null();
    };
    match (decode_score(s1), decode_score(s2)) {
        (Some([x1, y1]), Some([x2, y2])) => {
            reply_distance(c.out, distance(x1, y1, x2, y2) / to_meter)
        }
        _ => c.out.null(),
    }
}

/// The 11-character standard geohash of a stored score.
pub fn geohash_string(score: f64) -> Option<[u8; 11]> {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let [lon, lat] = decode_score(score)?;
    let r_lon = Range {
        min: -180.0,
        max: 180.0,
    };
    let r_lat = Range {
        min: -90.0,
        max: 90.0,
    };
    // Redis ignores a failed re-encoding and prints the zero hash.
    let bits = encode(r_lon, r_lat, lon, lat, 26).map_or(0, |h| h.bits);
    let mut buf = [b'0'; 11];
    for (i, slot) in buf.iter_mut().enumerate().take(10) {
        let idx = (bits >> (52 - (i + 1) * 5)) & 0x1f;
        *slot = ALPHABET[idx as usize];
    }
    Some(buf)
}

fn geohash(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    let z = match read_typed(&mut c.ks, c.out, db, a.get(1), Value::as_zset) {
        Err(()) => return,
        Ok(z) => z,
    };
    c.out.array(a.len() - 2);
    for m in a.iter().skip(2) {
        match z.and_then(|z| z.score(m)).and_then(geohash_string) {
            Some(s) => c.out.bulk(&s),
            None => c.out.null(),
        }
    }
}

fn geopos(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    let z = match read_typed(&mut c.ks, c.out, db, a.get(1), Value::as_zset) {
        Err(()) => return,
        Ok(z) => z,
    };
    c.out.array(a.len() - 2);
    for m in a.iter().skip(2) {
        match z.and_then(|z| z.score(m)).and_then(decode_score) {
            Some([lon, lat]) => {
                c.out.array(2);
                reply_coord(c.out, lon);
                reply_coord(c.out, lat);
            }
            None => c.out.null_array(),
        }
    }
}

// Variants of the search command, as Redis's flags.
const FROM_COORDS: u8 = 1;
const FROM_MEMBER: u8 = 2;
const NO_STORE: u8 = 4;
const SEARCH: u8 = 8;
const SEARCH_STORE: u8 = 16;

fn georadius(c: &mut Ctx, a: &Argv) {
    search_generic(c, a, 1, FROM_COORDS)
}
fn georadiusbymember(c: &mut Ctx, a: &Argv) {
    search_generic(c, a, 1, FROM_MEMBER)
}
fn georadius_ro(c: &mut Ctx, a: &Argv) {
    search_generic(c, a, 1, FROM_COORDS | NO_STORE)
}
fn georadiusbymember_ro(c: &mut Ctx, a: &Argv) {
    search_generic(c, a, 1, FROM_MEMBER | NO_STORE)
}
fn geosearch(c: &mut Ctx, a: &Argv) {
    search_generic(c, a, 1, SEARCH)
}
fn geosearchstore(c: &mut Ctx, a: &Argv) {
    search_generic(c, a, 2, SEARCH | SEARCH_STORE)
}

const NEED_RADIUS: &str = "ERR need numeric radius";
const NEGATIVE_RADIUS: &str = "ERR radius cannot be negative";
const NO_MEMBER: &str = "ERR could not decode requested zset member";

/// Parses a radius and its unit; None after the error reply.
fn radius_arg(c: &mut Ctx, r: &[u8], u: &[u8]) -> Option<(f64, f64)> {
    let r = non_negative(c, r, NEED_RADIUS)?;
    if r < 0.0 {
        c.error(NEGATIVE_RADIUS);
        return None;
    }
    let conv = unit(c, u)?;
    Some((r, conv))
}

/// The coordinates of `member` of the source set; None after the reply.
fn member_xy(c: &mut Ctx, src: &[u8], member: &[u8]) -> Option<[f64; 2]> {
    let db = c.db();
    let xy = match c.ks.lookup_read(db, src).map(|e| &e.value) {
        Some(Value::ZSet(z)) => z.score(member).and_then(decode_score),
        _ => None,
    };
    if xy.is_none() {
        c.error(NO_MEMBER);
    }
    xy
}

fn search_generic(c: &mut Ctx, a: &Argv, src_at: usize, flags: u8) {
    let db = c.db();
    let src = a.get(src_at);
    let exists = match c.ks.lookup_read(db, src).map(|e| &e.value) {
        None => false,
        Some(Value::ZSet(_)) => true,
        Some(_) => return c.wrongtype(),
    };
    let mut store: Option<&[u8]> = None;
    let mut storedist = false;
    let mut xy = [0.0f64; 2];
    let mut conversion = 0.0;
    let mut kind = Kind::Circle { radius: 0.0 };
    let base;
    if flags & FROM_COORDS != 0 {
        base = 6;
        let Some(p) = lon_lat(c, a.get(2), a.get(3)) else {
            return;
        };
        xy = p;
        let Some((r, conv)) = radius_arg(c, a.get(4), a.get(5)) else {
            return;
        };
        kind = Kind::Circle { radius: r };
        conversion = conv;
    } else if flags & FROM_MEMBER != 0 {
        base = 5;
        if exists {
            let Some(p) = member_xy(c, src, a.get(2)) else {
                return;
            };
            xy = p;
            let Some((r, conv)) = radius_arg(c, a.get(3), a.get(4)) else {
                return;
            };
            kind = Kind::Circle { radius: r };
            conversion = conv;
        }
    } else {
        base = if flags & SEARCH_STORE != 0 { 3 } else { 2 };
        if flags & SEARCH_STORE != 0 {
            store = Some(a.get(1));
        }
    }

    let (mut withdist, mut withhash, mut withcoord) = (false, false, false);
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let mut sort = Sort::None;
    let mut any = false;
    let mut count: i64 = 0;
    let remaining = a.len().saturating_sub(base);
    let mut i = 0;
    while i < remaining {
        let arg = a.get(base + i);
        let is = |w: &[u8]| arg.eq_ignore_ascii_case(w);
        let search = flags & SEARCH != 0;
        let may_store = flags & NO_STORE == 0 && !search;
        if is(b"withdist") {
            withdist = true;
        } else if is(b"withhash") {
            withhash = true;
        } else if is(b"withcoord") {
            withcoord = true;
        } else if is(b"any") {
            any = true;
        } else if is(b"asc") {
            sort = Sort::Asc;
        } else if is(b"desc") {
            sort = Sort::Desc;
        } else if is(b"count") && i + 1 < remaining {
            let Some(n) = parse_int(a.get(base + i + 1)) else {
                return c.error(NOT_INT);
            };
            if n <= 0 {
                return c.error("ERR COUNT must be > 0");
            }
            count = n;
            i += 1;
        } else if is(b"store") && i + 1 < remaining && may_store {
            store = Some(a.get(base + i + 1));
            storedist = false;
            i += 1;
        } else if is(b"storedist") && i + 1 < remaining && may_store {
            store = Some(a.get(base + i + 1));
            storedist = true;
            i += 1;
        } else if is(b"storedist") && search && flags & SEARCH_STORE != 0 {
            storedist = true;
        } else if is(b"frommember") && i + 1 < remaining && search && !fromloc {
            if exists {
                let Some(p) = member_xy(c, src, a.get(base + i + 1)) else {
                    return;
                };
                xy = p;
            }
            frommember = true;
            i += 1;
        } else if is(b"fromlonlat") && i + 2 < remaining && search && !frommember {
            let Some(p) = lon_lat(c, a.get(base + i + 1), a.get(base + i + 2)) else {
                return;
            };
            xy = p;
            fromloc = true;
            i += 2;
        } else if is(b"byradius") && i + 2 < remaining && search && !bybox {
            let Some((r, conv)) = radius_arg(c, a.get(base + i + 1), a.get(base + i + 2)) else {
                return;
            };
            kind = Kind::Circle { radius: r };
            conversion = conv;
            byradius = true;
            i += 2;
        } else if is(b"bybox") && i + 3 < remaining && search && !byradius {
            let w = parse_double(a.get(base + i + 1));
            let Some(w) = w else {
                return c.error("ERR need numeric width");
            };
            let Some(h) = parse_double(a.get(base + i + 2)) else {
                return c.error("ERR need numeric height");
            };
            if h < 0.0 || w < 0.0 {
                return c.error("ERR height or width cannot be negative");
            }
            let Some(conv) = unit(c, a.get(base + i + 3)) else {
                return;
            };
            kind = Kind::Rect {
                width: w,
                height: h,
            };
            conversion = conv;
            bybox = true;
            i += 3;
        } else {
            return c.error(SYNTAX);
        }
        i += 1;
    }

    if store.is_some() && (withdist || withhash || withcoord) {
        let who = if flags & SEARCH_STORE != 0 {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        return c.error(&format!(
            "ERR {who} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        ));
    }
    let name = String::from_utf8_lossy(a.get(0)).into_owned();
    if flags & SEARCH != 0 && !(frommember || fromloc) {
        return c.error(&format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        ));
    }
    if flags & SEARCH != 0 && !(byradius || bybox) {
        return c.error(&format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {name}"
        ));
    }
    if any && count == 0 {
        return c.error("ERR the ANY argument requires COUNT argument");
    }
    if !exists {
        match store {
            Some(dst) => {
                if c.ks.remove(db, dst).is_some() {
                    c.ks.signal_modified(db, dst);
                    c.notify(event::GENERIC, "del", dst);
                    c.dirty += 1;
                }
                c.out.int(0);
            }
            None => c.out.array(0),
        }
        return;
    }
    if count != 0 && sort == Sort::None && !any {
        sort = Sort::Asc;
    }
    let shape = Shape {
        xy,
        conversion,
        kind,
    };
    // COUNT beyond memory is just "no limit" in practice.
    let limit = if any {
        usize::try_from(count).unwrap_or(usize::MAX)
    } else {
        0
    };
    let mut points = match c.ks.lookup_read(db, src).map(|e| &e.value) {
        Some(Value::ZSet(z)) => search(z, &shape, limit),
        _ => Vec::new(),
    };
    if points.is_empty() && store.is_none() {
        return c.out.array(0);
    }
    let total = points.len();
    let keep = if count == 0 {
        total
    } else {
        total.min(usize::try_from(count).unwrap_or(usize::MAX))
    };
    sort_points(&mut points, sort, keep);
    points.truncate(keep);
    for p in points.iter_mut() {
        p.dist /= conversion;
    }
    match store {
        None => {
            let options = withdist as usize + withcoord as usize + withhash as usize;
            c.out.array(points.len());
            for p in &points {
                if options > 0 {
                    c.out.array(options + 1);
                }
                c.out.bulk(&p.member);
                if withdist {
                    reply_distance(c.out, p.dist);
                }
                if withhash {
                    c.out.int(p.score as i64);
                }
                if withcoord {
                    c.out.array(2);
                    reply_coord(c.out, p.lon);
                    reply_coord(c.out, p.lat);
                }
            }
        }
        Some(dst) => {
            let n = points.len();
            if n > 0 {
                let (max_entries, max_value) = c.srv.encoding.zset();
                let longest = points.iter().map(|p| p.member.len()).max().unwrap_or(0);
                let mut z = ZSet::with_hint(n, longest, max_entries, max_value);
                for p in &points {
                    let s = if storedist { p.dist } else { p.score };
                    z.insert_limited(&p.member, s, max_entries, max_value);
                }
                c.ks.set(db, dst, Value::ZSet(Box::new(z)));
                c.ks.signal_modified(db, dst);
                let ev = if flags & SEARCH != 0 {
                    "geosearchstore"
                } else {
                    "georadiusstore"
                };
                c.notify(event::ZSET, ev, dst);
                c.dirty += n as u64;
                c.signal_ready(dst);
            } else if c.ks.remove(db, dst).is_some() {
                c.ks.signal_modified(db, dst);
                c.notify(event::GENERIC, "del", dst);
                c.dirty += 1;
            }
            c.out.int(n as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaving_round_trips() {
        for (lat, lon) in [(0u32, 0u32), (1, 0), (0, 1), (0xffff_ffff, 0x1234_5678)] {
            assert_eq!(deinterleave(interleave(lat, lon)), (lat, lon));
        }
        assert_eq!(interleave(1, 0), 1);
        assert_eq!(interleave(0, 1), 2);
        assert_eq!(interleave(3, 0), 0b101);
    }

    #[test]
    fn encodes_the_scores_redis_stores() {
        // ZSCORE of GEOADD Sicily 13.361389 38.115556 Palermo (Redis docs).
        assert_eq!(score_of(13.361389, 38.115556), Some(3479099956230698));
        assert_eq!(score_of(15.087269, 37.502669), Some(3479447370796909));
        assert_eq!(score_of(-180.0, LAT_MIN), Some(0));
        assert_eq!(encode_wgs84(180.1, 0.0, 26), None);
        assert_eq!(encode_wgs84(0.0, 85.06, 26), None);
        assert_eq!(encode_wgs84(0.0, 0.0, 0), None);
    }

    #[test]
    fn decodes_scores_to_cell_centres() {
        let [lon, lat] = decode_score(3479099956230698.0).unwrap();
        assert_eq!(
            Ext::from_f64(lon).unwrap().to_human(),
            "13.36138933897018433"
        );
        assert_eq!(
            Ext::from_f64(lat).unwrap().to_human(),
            "38.11555639549629859"
        );
        assert_eq!(c_double_to_u64(f64::NAN), 1 << 63);
        assert_eq!(c_double_to_u64(-1.0), u64::MAX);
        assert_eq!(c_double_to_u64(f64::INFINITY), 0);
        assert_eq!(c_double_to_u64(1e19), 10_000_000_000_000_000_000);
        let zero = Hash::default();
        assert_eq!(neighbors(zero).east, zero);
        // Any double decodes without panicking, like Redis's C casts.
        for s in [-1.0, 1e300, f64::INFINITY, f64::NEG_INFINITY, 2f64.powi(60)] {
            assert!(decode_score(s).is_some());
        }
    }

    #[test]
    fn geohash_strings_use_the_standard_alphabet_and_ranges() {
        assert_eq!(&geohash_string(3479099956230698.0).unwrap(), b"sqc8b49rny0");
        assert_eq!(&geohash_string(3479447370796909.0).unwrap(), b"sqdtr74hyu0");
    }

    #[test]
    fn neighbors_step_one_cell_and_wrap() {
        let h = encode_wgs84(13.361389, 38.115556, 10).unwrap();
        let n = neighbors(h);
        let centre = |h: Hash| area_center(&decode(WGS84_LONG, WGS84_LAT, h).unwrap());
        let [x, y] = centre(h);
        let [xe, ye] = centre(n.east);
        let [xn, yn] = centre(n.north);
        let cell_w = 360.0 / 1024.0;
        let cell_h = (LAT_MAX - LAT_MIN) / 1024.0;
        assert!((xe - x - cell_w).abs() < 1e-9 && (ye - y).abs() < 1e-9);
        assert!((yn - y - cell_h).abs() < 1e-9 && (xn - x).abs() < 1e-9);
        assert_eq!(neighbors(n.east).west, h);
        assert_eq!(neighbors(n.north_east).south_west, h);
        // The west neighbour of the westmost cell is the eastmost one.
        let w = encode_wgs84(-180.0, 0.0, 4).unwrap();
        let [xw, _] = centre(neighbors(w).west);
        // 16 cells of 22.5 degrees: the last one is centred on 168.75.
        assert_eq!(xw, 168.75);
    }

    #[test]
    fn step_estimates_follow_radius_and_latitude() {
        assert_eq!(estimate_steps(0.0, 0.0), 26);
        assert_eq!(estimate_steps(1.0, 0.0), 24);
        // 200 km doubles 7 times to pass 20037726.37 m: 1 + 7 - 2 steps.
        assert_eq!(estimate_steps(200_000.0, 0.0), 6);
        assert_eq!(estimate_steps(200_000.0, 70.0), 5);
        assert_eq!(estimate_steps(200_000.0, -85.0), 4);
        assert_eq!(estimate_steps(f64::INFINITY, 0.0), 1);
        assert_eq!(estimate_steps(1e-300, 0.0), 26);
    }

    #[test]
    fn distances_format_with_four_decimals() {
        assert_eq!(format_distance(0.0), "0.0000");
        assert_eq!(format_distance(166274.15156960033), "166274.1516");
        assert_eq!(format_distance(0.00005), "0.0000");
        assert_eq!(format_distance(0.5), "0.5000");
        assert_eq!(format_distance(f64::NAN), "-922337203685477.5808");
    }

    #[test]
    fn sorts_match_redis_on_ties() {
        let d = [3.0, 1.0, 1.0, 2.0, 1.0, 0.5, 2.0, 1.0, 3.0];
        let cmp = |x: usize, y: usize| cmp_dist(d[x], d[y]);
        let mut v: Vec<usize> = (0..d.len()).collect();
        merge_sort(&mut v, &cmp, &mut Vec::new());
        assert_eq!(v, vec![5, 1, 2, 4, 7, 3, 6, 0, 8]);
        // The partial sort orders at least the first `keep` correctly.
        for keep in 1..d.len() {
            let mut p: Vec<usize> = (0..d.len()).collect();
            partial_qsort(&mut p, 0, d.len(), &cmp, 0, keep - 1);
            let got: Vec<f64> = p[..keep].iter().map(|&i| d[i]).collect();
            let mut want: Vec<f64> = d.to_vec();
            want.sort_by(|a, b| a.partial_cmp(b).unwrap());
            assert_eq!(got, want[..keep].to_vec());
        }
        let big: Vec<f64> = (0..200).map(|i| ((i * 37) % 101) as f64).collect();
        let cmp = |x: usize, y: usize| cmp_dist(big[x], big[y]);
        let mut p: Vec<usize> = (0..big.len()).collect();
        partial_qsort(&mut p, 0, big.len(), &cmp, 0, 9);
        let mut want = big.clone();
        want.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let got: Vec<f64> = p[..10].iter().map(|&i| big[i]).collect();
        assert_eq!(got, want[..10].to_vec());
    }
}
