//! The global allocator: mimalloc, wiping every block before it goes back to the heap.
//!
//! # Design
//!
//! [`WipingMimalloc`] forwards allocation to mimalloc and adds one rule: the bytes a block held
//! are zeroed before mimalloc sees the block again. Request and response text passes through
//! many owners that Lethe does not write (hyper's read buffers, `serde_json` values, `Bytes`
//! handed between tasks); wiping in the allocator covers all of them, including the code of
//! dependencies, without each one having to remember `Zeroizing`.
//!
//! * **free**: the block's layout size is zeroed, then the block is freed.
//! * **realloc**: when the new size fits the block mimalloc already gave out (its usable size)
//!   and does not shrink it below half, the block stays where it is (mimalloc's own rule), and
//!   a shrink zeroes the bytes it gives up. Otherwise a new block is allocated, the contents
//!   copied, and the old block zeroed and freed. mimalloc's own `realloc` is never called: it
//!   would free the old block unwiped.
//! * Zeroing is `memset` followed by a compiler barrier (an empty `asm!` block that may read the
//!   zeroed memory), so the optimizer cannot drop the stores as dead: the same guarantee as the
//!   volatile writes of `zeroize`, with the plain `memset` the compiler and libc make fast for
//!   every size. `benches/alloc.rs` compares the two.
//!
//! # Invariants
//!
//! Every byte a program wrote lies within the layout size of its block at the time: the
//! `GlobalAlloc` contract passes the same layout to `dealloc` as was used to allocate or
//! reallocate, growth in place enlarges the layout, and a shrink in place zeroes the tail at
//! once. So zeroing `layout.size()` on free leaves nothing behind.
//!
//! # Limits
//!
//! * Memory that never goes through this allocator is not wiped: thread stacks, kernel socket
//!   buffers, and the rare allocation of C code inside libc.
//! * A live buffer holds its content until it is freed: a pooled HTTP/1.1 connection wipes the
//!   bytes of its read buffer as it consumes them, so an idle one holds nothing of the last
//!   answer, but HTTP/2 and TLS state lives until the pool drops the connection
//!   (`upstream.pool_idle_timeout_ms`).
//!
//! [`Wiped`] is the buffer type for content Lethe owns outright: it wipes its whole allocation
//! when dropped, as `zeroize::Zeroizing` does, with one `memset` (see its documentation).
//! * The cost is one `memset` per free: see SECURITY.md for the measured numbers.
//!
//! [`prepare`] finishes mimalloc's lazy start-up work (options, NUMA layout) while the process
//! may still read files; `serve` calls it before the sandbox locks.

// The one module of Lethe with `unsafe` code: a global allocator cannot be written without it.
#![allow(unsafe_code)]
#![warn(unsafe_op_in_unsafe_fn)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::{c_long, c_void};

use libmimalloc_sys as mi;

/// mimalloc, zeroing every block before it is freed or moved by `realloc`.
///
/// `main.rs` installs it with `#[global_allocator]`.
#[derive(Clone, Copy, Debug, Default)]
pub struct WipingMimalloc;

// SAFETY: every method forwards to mimalloc's aligned allocation functions, which honour size
// and alignment, and frees only blocks that mimalloc handed out (the caller's contract). Wiping
// writes only within the block being freed or shrunk, which the caller no longer uses.
unsafe impl GlobalAlloc for WipingMimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: `layout` has a non-zero size and a power-of-two alignment (GlobalAlloc
        // contract), which is what `mi_malloc_aligned` needs.
        unsafe { mi::mi_malloc_aligned(layout.size(), layout.align()).cast() }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe { mi::mi_zalloc_aligned(layout.size(), layout.align()).cast() }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` is a live block of `layout.size()` bytes from this allocator (caller's
        // contract); it is wiped while it is still ours, then handed back to mimalloc.
        unsafe {
            wipe_raw(ptr, layout.size());
            mi::mi_free(ptr.cast());
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old_size = layout.size();
        // SAFETY: `ptr` is a live block from mimalloc (caller's contract).
        let usable = unsafe { mi::mi_usable_size(ptr.cast_const().cast::<c_void>()) };
        if new_size <= usable && new_size >= usable / 2 {
            if new_size < old_size {
                // SAFETY: `new_size..old_size` lies inside the block and is given up by the
                // caller.
                unsafe { wipe_raw(ptr.add(new_size), old_size - new_size) };
            }
            return ptr;
        }
        // SAFETY: `new_size` is non-zero and `layout.align()` a power of two (contract).
        let new = unsafe { mi::mi_malloc_aligned(new_size, layout.align()) }.cast::<u8>();
        if new.is_null() {
            // The old block stays valid and untouched, as `realloc` promises on failure.
            return new;
        }
        // SAFETY: both blocks are live, distinct, and at least `min(old, new)` bytes long; the
        // old one is then wiped and freed, and the caller uses only `new` from now on.
        unsafe {
            std::ptr::copy_nonoverlapping(ptr, new, old_size.min(new_size));
            wipe_raw(ptr, old_size);
            mi::mi_free(ptr.cast());
        }
        new
    }
}

/// A buffer that wipes itself: `String` and `Vec<u8>`.
pub trait Wipe: Default {
    /// Zeroes the whole allocation (contents and spare capacity) and empties the buffer; does
    /// nothing to a buffer that never allocated.
    fn wipe(&mut self);
}

impl Wipe for Vec<u8> {
    fn wipe(&mut self) {
        let capacity = self.capacity();
        self.clear();
        if capacity > 0 {
            // SAFETY: the allocation holds `capacity` bytes, all of them ours to write; the
            // vector is empty, so no element is left holding zeroes it did not expect.
            unsafe { wipe_raw(self.as_mut_ptr(), capacity) };
        }
    }
}

impl Wipe for String {
    fn wipe(&mut self) {
        // SAFETY: `Vec::wipe` leaves the vector empty, and an empty string is valid UTF-8.
        unsafe { self.as_mut_vec() }.wipe();
    }
}

/// A `String` or `Vec<u8>` whose whole allocation is zeroed when it is dropped.
///
/// The promise of `zeroize::Zeroizing` for these two types, kept with one `memset` over the
/// capacity, and none for a buffer that never allocated. `Zeroizing` calls `memset` twice
/// (spare capacity, then contents) even for an empty buffer. glibc's AVX-512 `memset` does a
/// short length as a masked store at the address given; at the dangling address of a buffer
/// that never allocated, that store takes a microcode assist. Dropping an empty
/// `Zeroizing<String>` measured about 150 ns here, against 27 ns for allocating, wiping and
/// freeing 200 bytes, and the stream path paid it on every event.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Wiped<T: Wipe>(T);

impl<T: Wipe> Wiped<T> {
    /// Takes `buffer` into care.
    pub fn new(buffer: T) -> Wiped<T> {
        Wiped(buffer)
    }
}

impl<T: Wipe> From<T> for Wiped<T> {
    fn from(buffer: T) -> Wiped<T> {
        Wiped(buffer)
    }
}

impl<T: Wipe> std::ops::Deref for Wiped<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Wipe> std::ops::DerefMut for Wiped<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: Wipe> Drop for Wiped<T> {
    fn drop(&mut self) {
        self.0.wipe();
    }
}

/// Zeroes `buf` with stores the optimizer may not remove, at `memset` speed.
pub fn wipe(buf: &mut [u8]) {
    if buf.is_empty() {
        // Nothing to do, and the pointer may dangle (see [`Wiped`]).
        return;
    }
    // SAFETY: `buf` is a valid, exclusive slice of `buf.len()` bytes.
    unsafe { wipe_raw(buf.as_mut_ptr(), buf.len()) }
}

/// Zeroes `len` bytes at `ptr`.
///
/// # Safety
///
/// `ptr` must be valid for writes of `len` bytes.
#[inline]
unsafe fn wipe_raw(ptr: *mut u8, len: usize) {
    // SAFETY: valid for `len` bytes of writes (caller's contract); `u8` has no alignment need.
    unsafe { std::ptr::write_bytes(ptr, 0, len) };
    barrier(ptr);
}

/// Tells the compiler that the memory at `ptr` may be read here, so stores before it are live.
#[inline(always)]
fn barrier(ptr: *const u8) {
    // SAFETY: the assembly is empty: it reads no memory, writes none and leaves every register
    // and flag as it was. Only the compiler's view changes (`readonly`: it may read memory).
    unsafe {
        std::arch::asm!("/* {0} */", in(reg) ptr, options(nostack, preserves_flags, readonly));
    }
}

/// Does mimalloc's lazy start-up work now, while the process may still read files and the
/// environment: initialises the process, reads every `MIMALLOC_*` option, and pins the number
/// of NUMA nodes (which mimalloc would otherwise detect later by probing
/// `/sys/devices/system/node`). Call it once before the sandbox locks; calling it again is
/// harmless.
pub fn prepare() {
    // SAFETY: these functions take and return plain integers; `mi_process_init` is idempotent,
    // and setting the NUMA option only affects where later blocks are placed.
    unsafe {
        mi::mi_process_init();
        for option in 0..mi::_mi_option_last {
            mi::mi_option_get(option);
        }
        if mi::mi_option_get(mi::mi_option_use_numa_nodes) <= 0 {
            mi::mi_option_set(mi::mi_option_use_numa_nodes, numa_nodes());
        }
    }
}

/// NUMA nodes the kernel shows (`/sys/devices/system/node/nodeN`), at least one.
fn numa_nodes() -> c_long {
    let nodes = std::fs::read_dir("/sys/devices/system/node")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|entry| {
                    entry
                        .file_name()
                        .to_str()
                        .and_then(|name| name.strip_prefix("node"))
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                })
                .count()
        })
        .unwrap_or(0);
    c_long::try_from(nodes.max(1)).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(layout: Layout) -> *mut u8 {
        // SAFETY: non-zero size; the block is written within its layout only.
        unsafe {
            let p = WipingMimalloc.alloc(layout);
            assert!(!p.is_null());
            for i in 0..layout.size() {
                p.add(i).write((i % 251) as u8 + 1);
            }
            p
        }
    }

    fn assert_prefix(p: *const u8, len: usize) {
        for i in 0..len {
            // SAFETY: `p` is a live block of at least `len` bytes.
            assert_eq!(unsafe { p.add(i).read() }, (i % 251) as u8 + 1, "byte {i}");
        }
    }

    #[test]
    fn realloc_keeps_contents_when_growing_in_place_and_when_moving() {
        for (align, from, to) in [(8, 24, 30), (8, 100, 10_000), (64, 1000, 200_000)] {
            let layout = Layout::from_size_align(from, align).unwrap();
            let p = filled(layout);
            // SAFETY: `p` comes from this allocator with `layout`.
            unsafe {
                let q = WipingMimalloc.realloc(p, layout, to);
                assert!(!q.is_null());
                assert_eq!(q as usize % align, 0);
                assert_prefix(q, from);
                WipingMimalloc.dealloc(q, Layout::from_size_align(to, align).unwrap());
            }
        }
    }

    #[test]
    fn shrinking_in_place_wipes_the_tail_and_moving_keeps_the_head() {
        let layout = Layout::from_size_align(4096, 8).unwrap();
        let p = filled(layout);
        // SAFETY: `p` comes from this allocator with `layout`; the tail read stays inside the
        // block mimalloc gave out (its usable size is at least 4096).
        unsafe {
            let q = WipingMimalloc.realloc(p, layout, 3000);
            assert_eq!(q, p, "a shrink to more than half stays in place");
            assert_prefix(q, 3000);
            assert!((3000..4096).all(|i| q.add(i).read() == 0), "tail wiped");
            let r = WipingMimalloc.realloc(q, Layout::from_size_align(3000, 8).unwrap(), 16);
            assert_prefix(r, 16);
            WipingMimalloc.dealloc(r, Layout::from_size_align(16, 8).unwrap());
        }
    }

    #[test]
    fn wiped_buffers_zero_their_whole_allocation() {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(&[0xA5u8; 40]);
        let p = v.as_ptr();
        let mut w = Wiped::new(v);
        w.truncate(10);
        w.wipe();
        assert!(w.is_empty());
        // SAFETY: the allocation is live (the vector still owns it) and 64 bytes long.
        assert!((0..64).all(|i| unsafe { p.add(i).read() } == 0));
        let mut s = String::from("secret");
        s.wipe();
        assert!(s.is_empty() && s.capacity() >= 6);
        // Never allocated: nothing to wipe, nothing to fail.
        drop(Wiped::new(String::new()));
        wipe(&mut []);
    }

    #[test]
    fn wipe_zeroes_every_byte() {
        let mut buf = vec![0xA5u8; 1025];
        wipe(&mut buf[1..]);
        assert_eq!(buf[0], 0xA5);
        assert!(buf[1..].iter().all(|&b| b == 0));
    }

    #[test]
    fn prepare_is_repeatable() {
        prepare();
        prepare();
        // SAFETY: reads an option value.
        assert!(unsafe { mi::mi_option_get(mi::mi_option_use_numa_nodes) } >= 1);
    }
}
