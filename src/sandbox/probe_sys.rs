//! The two probes of `lethe sandbox-check` that need raw memory calls: mapping memory
//! executable, directly and by changing the protection of a writable mapping.
//!
//! The only `unsafe` in the sandbox: each block maps a fresh anonymous page at an address the
//! kernel chooses, never touches it, and unmaps it at once.

#![allow(unsafe_code)]

use std::io;
use std::ptr;

use rustix::mm::{mmap_anonymous, mprotect, munmap, MapFlags, MprotectFlags, ProtFlags};

const PAGE: usize = 4096;

/// `mmap(PROT_READ | PROT_EXEC)` of one anonymous page.
pub fn map_executable() -> io::Result<()> {
    // SAFETY: a new private anonymous mapping at a kernel-chosen address aliases no Rust object;
    // it is unmapped before returning and never read or written.
    unsafe {
        let page = mmap_anonymous(
            ptr::null_mut(),
            PAGE,
            ProtFlags::READ | ProtFlags::EXEC,
            MapFlags::PRIVATE,
        )?;
        let _ = munmap(page, PAGE);
    }
    Ok(())
}

/// `mprotect(PROT_READ | PROT_EXEC)` on a page mapped writable.
pub fn make_executable() -> io::Result<()> {
    // SAFETY: as above; the protection change applies to that fresh page only, which holds no
    // Rust object and is unmapped before returning.
    unsafe {
        let page = mmap_anonymous(
            ptr::null_mut(),
            PAGE,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )?;
        let result = mprotect(page, PAGE, MprotectFlags::READ | MprotectFlags::EXEC);
        let _ = munmap(page, PAGE);
        result?;
    }
    Ok(())
}
