//! `lethe sandbox-check`: proves the sandbox on this kernel by trying what it forbids.
//!
//! # Design
//! Each check runs in its own child process (the same binary, hidden `__sandbox-probe`
//! subcommand) that locks itself down exactly as `lethe serve` does and then tries one forbidden
//! operation. With the default `kill` action the first violation ends the child, hence one
//! child per check. The parent reads each outcome from the child's exit:
//!
//! | child | verdict |
//! |---|---|
//! | locked down, then killed by `SIGSYS` | blocked (seccomp killed it) |
//! | locked down, exit 0: the call failed with `EPERM`, `EACCES` or `ENOSYS` | blocked (refused) |
//! | exit [`ALLOWED`]: the operation succeeded | `ALLOWED` |
//! | anything else (no lockdown report, another error) | `error` |
//!
//! A child reports on stdout that lockdown is complete, and that a thread and fresh memory
//! still work, before it tries anything: a child killed before that is an error, not a blocked
//! check.
//!
//! The command succeeds only when every check is blocked: an operation that succeeds, or a
//! check that cannot tell, fails it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use rustix::net::{ipproto, socket, AddressFamily, SocketType};

use super::probe_sys;
use crate::config::Sandbox;

/// The hidden subcommand a child runs.
pub const PROBE_COMMAND: &str = "__sandbox-probe";
/// The probe argument that only says "this program was started": reaching it means exec or
/// process creation worked.
pub const LANDED: &str = "landed";
/// The start of the line a child prints once locked down, followed by its Landlock state.
const LOCKED: &str = "locked down, Landlock ";
/// A child's exit code when the forbidden operation succeeded.
pub const ALLOWED: u8 = 3;
/// A child's exit code when the check could not tell (an unexpected error).
pub const INCONCLUSIVE: u8 = 4;

/// One forbidden operation.
#[derive(Clone, Copy, Debug)]
pub struct Check {
    /// The argument of the hidden probe subcommand.
    pub id: &'static str,
    /// What it tries, as printed.
    pub what: &'static str,
}

/// Every check, in the order printed.
pub const CHECKS: &[Check] = &[
    Check {
        id: "open-write",
        what: "open a file for writing",
    },
    Check {
        id: "open-read",
        what: "open a file for reading",
    },
    Check {
        id: "exec",
        what: "execute a program",
    },
    Check {
        id: "fork",
        what: "start a process (fork)",
    },
    Check {
        id: "raw-socket",
        what: "open a raw IP socket",
    },
    Check {
        id: "netlink-socket",
        what: "open a netlink socket",
    },
    Check {
        id: "mmap-exec",
        what: "map executable memory",
    },
    Check {
        id: "mprotect-exec",
        what: "make writable memory executable",
    },
];

/// How one check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// seccomp killed the child.
    Killed,
    /// The call failed with a permission error.
    Refused,
    /// The operation succeeded.
    Allowed,
    /// The child could not lock down or the call failed for another reason.
    Error,
}

impl Verdict {
    fn from_status(status: ExitStatus, locked: bool) -> Verdict {
        if status.code() == Some(i32::from(ALLOWED)) {
            return Verdict::Allowed;
        }
        if !locked {
            return Verdict::Error;
        }
        if status.signal() == Some(libc::SIGSYS) {
            return Verdict::Killed;
        }
        match status.code() {
            Some(0) => Verdict::Refused,
            Some(code) if code == i32::from(ALLOWED) => Verdict::Allowed,
            _ => Verdict::Error,
        }
    }

    fn blocked(self) -> bool {
        matches!(self, Verdict::Killed | Verdict::Refused)
    }
}

/// Runs every check in a child of `exe` locked down with `sandbox`, printing one line per
/// check to `out`. Returns whether every one was blocked.
pub fn run(exe: &Path, sandbox: &Sandbox, out: &mut dyn Write) -> io::Result<bool> {
    let mut blocked = 0;
    let mut landlock = None;
    for check in CHECKS {
        let mut cmd = Command::new(exe);
        cmd.arg(PROBE_COMMAND)
            .arg("--action")
            .arg(sandbox.seccomp_action.name());
        if sandbox.lock_memory {
            cmd.arg("--lock-memory");
        }
        let output = cmd
            .arg(check.id)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()?;
        let report = String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|l| l.strip_prefix(LOCKED).map(str::to_owned));
        let verdict = Verdict::from_status(output.status, report.is_some());
        landlock = landlock.or(report);
        let line = match verdict {
            Verdict::Killed => "blocked  {} (killed by seccomp)",
            Verdict::Refused => "blocked  {} (refused)",
            Verdict::Allowed => "ALLOWED  {}",
            Verdict::Error => "error    {} (the check could not run)",
        };
        writeln!(out, "{}", line.replace("{}", check.what))?;
        blocked += usize::from(verdict.blocked());
    }
    writeln!(
        out,
        "{blocked} of {} blocked (seccomp action {}, Landlock {})",
        CHECKS.len(),
        sandbox.seccomp_action.name(),
        landlock.as_deref().unwrap_or("unknown")
    )?;
    Ok(blocked == CHECKS.len())
}

/// Runs eight threads at once, each allocating 8 MiB; true when all of them finished.
fn threads_and_memory_work() -> bool {
    const THREADS: usize = 8;
    const BYTES: usize = 8 << 20;
    let together = std::sync::Arc::new(std::sync::Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let together = std::sync::Arc::clone(&together);
            std::thread::spawn(move || {
                let block = std::hint::black_box(vec![1u8; BYTES]);
                together.wait();
                block.len()
            })
        })
        .collect();
    threads
        .into_iter()
        .all(|thread| thread.join().ok() == Some(BYTES))
}

/// The child's side: locks down with `sandbox`, then tries the check named `id`. Returns the
/// exit code the parent reads.
pub fn probe(id: &str, sandbox: &Sandbox) -> u8 {
    if id == LANDED {
        return ALLOWED;
    }
    // Resolved before lockdown: it reads /proc/self/exe.
    let Ok(exe) = std::env::current_exe() else {
        return INCONCLUSIVE;
    };
    let Ok(state) = super::lockdown(sandbox) else {
        return INCONCLUSIVE;
    };
    // What serving needs must still work: new threads (clone3 refused, clone with thread
    // flags allowed) and fresh memory. Several threads live at once, so the allocator cannot
    // serve them all from the per-thread data it kept from before lockdown and has to map (and
    // name) new memory, as a runtime that grows under load does. A child that dies here never
    // reports being locked down.
    if !threads_and_memory_work() {
        return INCONCLUSIVE;
    }
    let landlock = match state.landlock_abi {
        Some(abi) if state.landlock_all_threads => format!("ABI {abi}, all threads"),
        Some(abi) => format!("ABI {abi}"),
        None => "not available".to_owned(),
    };
    let _ = writeln!(io::stdout(), "{LOCKED}{landlock}");
    let _ = io::stdout().flush();
    let result = match id {
        "open-write" => OpenOptions::new().write(true).open("/dev/null").map(drop),
        "open-read" => File::open("/dev/null").map(drop),
        "exec" => Err(Command::new(&exe).arg(PROBE_COMMAND).arg(LANDED).exec()),
        "fork" => Command::new(&exe)
            .arg(PROBE_COMMAND)
            .arg(LANDED)
            .spawn()
            .and_then(|mut child| child.wait())
            .map(drop),
        "raw-socket" => socket(AddressFamily::INET, SocketType::RAW, Some(ipproto::ICMP))
            .map(drop)
            .map_err(io::Error::from),
        "netlink-socket" => socket(AddressFamily::NETLINK, SocketType::RAW, None)
            .map(drop)
            .map_err(io::Error::from),
        "mmap-exec" => probe_sys::map_executable(),
        "mprotect-exec" => probe_sys::make_executable(),
        _ => return INCONCLUSIVE,
    };
    match result {
        Ok(()) => ALLOWED,
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EPERM | libc::EACCES | libc::ENOSYS)
            ) =>
        {
            0
        }
        Err(_) => INCONCLUSIVE,
    }
}
