//! A counting global allocator: the system allocator, plus a running total of
//! the bytes it holds for the process. This is `used_memory` (INFO memory) and
//! what maxmemory is compared with.
//!
//! Cost: each thread adds to a thread-local counter and publishes it to one
//! global atomic only when it has drifted by [`FLUSH_BYTES`], so the hot path
//! is a thread-local add and compare; two cores never fight over a cache line
//! per allocation. The global total is therefore late by at most
//! `FLUSH_BYTES` per thread.
//!
//! What is counted is glibc malloc's chunk size, not the requested size: a
//! request of n bytes occupies `(n + 8)` rounded up to 16 (at least 32), and a
//! large one (mmap'ed) whole pages. Counting requests instead would miss the
//! per-allocation overhead, which for small keys is a third of the memory.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};

/// Per-thread drift allowed before publishing to the global total.
const FLUSH_BYTES: isize = 32 * 1024;
/// glibc's default mmap threshold: larger requests get their own pages.
const MMAP_THRESHOLD: usize = 128 * 1024;

static TOTAL: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    /// Not yet published to TOTAL.
    static PENDING: Cell<isize> = const { Cell::new(0) };
    /// Everything this thread allocated minus everything it freed, exact:
    /// eviction measures what a deletion freed with it.
    static THREAD_NET: Cell<isize> = const { Cell::new(0) };
}

/// The bytes glibc actually takes for a request of `size`.
#[inline]
pub fn chunk_size(size: usize) -> usize {
    if size >= MMAP_THRESHOLD {
        (size + 16 + 4095) & !4095
    } else {
        ((size + 8 + 15) & !15).max(32)
    }
}

#[inline]
fn account(delta: isize) {
    // try_with: a thread being torn down may still free memory.
    let _ = THREAD_NET.try_with(|n| n.set(n.get() + delta));
    let flushed = PENDING.try_with(|p| {
        let v = p.get() + delta;
        if v.unsigned_abs() >= FLUSH_BYTES as usize {
            TOTAL.fetch_add(v, Ordering::Relaxed);
            p.set(0);
        } else {
            p.set(v);
        }
    });
    if flushed.is_err() {
        TOTAL.fetch_add(delta, Ordering::Relaxed);
    }
}

/// The system allocator with byte accounting; installed by the binary.
pub struct Counting;

unsafe impl GlobalAlloc for Counting {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            account(chunk_size(layout.size()) as isize);
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            account(chunk_size(layout.size()) as isize);
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        account(-(chunk_size(layout.size()) as isize));
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            account(chunk_size(new_size) as isize - chunk_size(layout.size()) as isize);
        }
        p
    }
}

/// Bytes held by the allocator for the whole process (late by at most
/// 32 KiB per thread). 0 when the counting allocator is not installed.
pub fn used_memory() -> usize {
    TOTAL.load(Ordering::Relaxed).max(0) as usize
}

/// This thread's exact net allocation so far; the difference of two readings
/// is what the code between them allocated (negative: freed).
pub fn thread_net() -> isize {
    THREAD_NET.try_with(|n| n.get()).unwrap_or(0)
}

/// Whether the binary installed [`Counting`] (unit tests of the library do not).
pub fn installed() -> bool {
    used_memory() > 0
}

extern "C" {
    fn mallopt(param: i32, value: i32) -> i32;
    fn malloc_trim(pad: usize) -> i32;
}

/// glibc's M_ARENA_MAX.
const M_ARENA_MAX: i32 = -8;

/// Makes every thread allocate from one glibc arena. With one arena per
/// thread, memory freed by an eviction on one thread can only be reused by
/// the thread that allocated it, and RSS grows to the sum of every arena's
/// high-water mark (measured: up to 1.35x maxmemory instead of 1.05x).
/// Called at startup, before any other thread exists, when maxmemory is set.
pub fn single_arena() {
    // SAFETY: mallopt only changes allocator tuning; no thread allocates yet.
    unsafe {
        mallopt(M_ARENA_MAX, 1);
    }
}

/// Returns free memory at the top of the heaps and whole free pages inside
/// them to the system (MEMORY PURGE).
pub fn purge() {
    // SAFETY: malloc_trim is thread-safe and has no preconditions.
    unsafe {
        malloc_trim(0);
    }
}
