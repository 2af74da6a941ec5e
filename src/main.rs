//! The `lethe` binary: everything lives in the library; this maps the command line to it.

use std::process::ExitCode;

/// mimalloc (per-thread free lists keep the many small, short-lived allocations of JSON and SSE
/// handling off a global lock), zeroing every block before it is freed: see `lethe::alloc`.
#[global_allocator]
static ALLOCATOR: lethe::alloc::WipingMimalloc = lethe::alloc::WipingMimalloc;

fn main() -> ExitCode {
    lethe::cli::run(std::env::args_os())
}
