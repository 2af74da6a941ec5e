//! The `lethe` binary: everything lives in the library; this maps the command line to it.

use std::process::ExitCode;

/// mimalloc: per-thread free lists keep the many small, short-lived allocations of JSON and
/// SSE handling off a global lock.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    lethe::cli::run(std::env::args_os())
}
