//! The `lethe` binary: everything lives in the library; this maps the command line to it.

use std::process::ExitCode;

fn main() -> ExitCode {
    lethe::cli::run(std::env::args_os())
}
