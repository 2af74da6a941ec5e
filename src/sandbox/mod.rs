//! Process lockdown: after start-up Lethe can open no file, start no process, map no executable
//! memory, and leaves nothing behind when it dies.
//!
//! # Start-up order
//! ```text
//! config, credentials, TLS material ─▶ runtime ─▶ listeners ─▶ StatsD socket ─▶ DNS resolver
//!   ─▶ sandbox::lockdown() ─▶ serve
//! ```
//! Everything that reads a file, directly or lazily, must happen before [`lockdown`]. What
//! Lethe's dependencies would otherwise do lazily is forced in [`prepare`], the one place for
//! "things to do before lockdown".
//!
//! # Steps, in order
//! 1. [`prepare`]: the allocator's lazy NUMA probe and the random source are warmed up.
//! 2. `RLIMIT_CORE = 0` (no core file) and `RLIMIT_FSIZE = 0` (a descriptor to a regular file,
//!    had one leaked, cannot be written: the write raises `SIGXFSZ`, which ends the process).
//! 3. `PR_SET_DUMPABLE = 0`: no core dump, and only a privileged process can attach or read
//!    `/proc/PID/mem`.
//! 4. `mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)` when `sandbox.lock_memory` is set:
//!    content never reaches swap.
//! 5. `PR_SET_NO_NEW_PRIVS`: no privilege gain through exec (a prerequisite of the next steps).
//! 6. Landlock, where the kernel has it: a ruleset that handles every filesystem access and
//!    grants none. With Landlock ABI 8 (Linux 7.0) it covers every thread; before that it
//!    covers the calling thread and the threads it starts later, which is why seccomp (next)
//!    is the guarantee and Landlock the second layer.
//! 7. seccomp, on every thread (TSYNC): the allowlist in [`seccomp::ALLOWLIST`].
//!
//! # Invariants
//! - [`lockdown`] runs once; its result is published in [`state`] for status reporting.
//! - Errors are static text: nothing here carries content.
//!
//! # Limits
//! - Descriptors opened before lockdown (listeners, the StatsD socket, stdio) stay usable; that
//!   is the point of the start-up order.
//! - After lockdown stderr should be a pipe, a terminal or the journal: a write to a regular
//!   file ends the process (`RLIMIT_FSIZE = 0`). Lethe writes nothing there once it serves.

pub mod check;
mod probe_sys;
pub mod seccomp;

use std::sync::OnceLock;

use landlock::{
    Access, AccessFs, LandlockStatus, RestrictSelfAttr, Ruleset, RulesetAttr, RulesetStatus, ABI,
};
use rustix::mm::{mlockall, MlockAllFlags};
use rustix::process::{setrlimit, Resource, Rlimit};

use crate::config::{Sandbox, SeccompAction};

/// The live sandbox state, for status reporting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SandboxState {
    /// The seccomp filter's action for a syscall outside the allowlist; `None` before lockdown.
    pub seccomp: Option<SeccompAction>,
    /// The Landlock ABI the kernel offers and that was enforced; `None` when the kernel has no
    /// Landlock (or before lockdown).
    pub landlock_abi: Option<u8>,
    /// Whether Landlock covers every thread (ABI 8) rather than the locking thread and its
    /// descendants.
    pub landlock_all_threads: bool,
    /// Whether the process is dumpable (`false` after lockdown).
    pub dumpable: bool,
    /// Whether memory is locked out of swap (`sandbox.lock_memory`).
    pub memory_locked: bool,
}

static STATE: OnceLock<SandboxState> = OnceLock::new();

/// The sandbox as [`lockdown`] left it; before lockdown, an unlocked, dumpable process.
pub fn state() -> SandboxState {
    STATE.get().copied().unwrap_or(SandboxState {
        dumpable: true,
        ..SandboxState::default()
    })
}

/// Why lockdown failed. Lethe does not serve without its sandbox.
#[derive(Debug, thiserror::Error)]
pub enum LockdownError {
    /// Lockdown already ran.
    #[error("the sandbox is already locked")]
    AlreadyLocked,
    /// `setrlimit` failed.
    #[error("cannot set the core and file-size limits to zero")]
    Rlimit,
    /// `prctl(PR_SET_DUMPABLE)` failed.
    #[error("cannot make the process non-dumpable")]
    Dumpable,
    /// `mlockall` failed: the memory-lock limit is too low.
    #[error(
        "cannot lock memory (sandbox.lock_memory): the memory-lock limit is too low; raise it \
         (systemd LimitMEMLOCK=infinity, ulimit -l) or grant CAP_IPC_LOCK"
    )]
    MemoryLock,
    /// `prctl(PR_SET_NO_NEW_PRIVS)` failed.
    #[error("cannot set no_new_privs")]
    NoNewPrivs,
    /// The kernel has Landlock but refused the ruleset.
    #[error("cannot apply the Landlock ruleset")]
    Landlock,
    /// The seccomp filter does not compile.
    #[error(transparent)]
    Filter(#[from] seccomp::FilterError),
    /// The kernel refused the seccomp filter (no seccomp, or a thread could not be synced).
    #[error("cannot install the seccomp filter on every thread")]
    Seccomp,
}

/// Things to do before lockdown: work that Lethe's dependencies would otherwise do lazily,
/// reading a file the sandbox then forbids.
///
/// - The allocator (mimalloc) counts NUMA nodes, probing `/sys/devices/system/node` with
///   `access()`, the first time a thread other than the main one allocates, and caches the
///   count process-wide: a short-lived thread allocates here. (A process that starts its first
///   thread after lockdown would otherwise be killed right there.)
/// - The random source (`getrandom`) is touched once, so no library falls back to opening
///   `/dev/urandom` on first use.
///
/// Already done by the time this runs, by the start-up order: the runtime has counted CPUs
/// (cgroup files), the upstream client holds the built-in root certificates (no file), the DNS
/// resolver has read `/etc/resolv.conf` and `/etc/hosts`.
pub fn prepare() {
    let _ = std::thread::spawn(|| std::hint::black_box(vec![0u8; 1 << 16]).len()).join();
    let mut seed = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed);
}

/// Locks the process down (see the module docs for the steps). Call once, right before serving.
pub fn lockdown(config: &Sandbox) -> Result<SandboxState, LockdownError> {
    if STATE.get().is_some() {
        return Err(LockdownError::AlreadyLocked);
    }
    prepare();
    let zero = || Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    setrlimit(Resource::Core, zero()).map_err(|_| LockdownError::Rlimit)?;
    setrlimit(Resource::Fsize, zero()).map_err(|_| LockdownError::Rlimit)?;
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|_| LockdownError::Dumpable)?;
    if config.lock_memory {
        mlockall(MlockAllFlags::CURRENT | MlockAllFlags::FUTURE | MlockAllFlags::ONFAULT)
            .map_err(|_| LockdownError::MemoryLock)?;
    }
    rustix::thread::set_no_new_privs(true).map_err(|_| LockdownError::NoNewPrivs)?;
    let (landlock_abi, landlock_all_threads) = landlock()?;
    let [allowlist, answers] = seccomp::filters(config.seccomp_action, std::process::id())?;
    // The answers first: installing a filter takes `prctl` and `seccomp`, which the allowlist
    // forbids.
    seccompiler::apply_filter_all_threads(&answers).map_err(|_| LockdownError::Seccomp)?;
    seccompiler::apply_filter_all_threads(&allowlist).map_err(|_| LockdownError::Seccomp)?;
    let state = SandboxState {
        seccomp: Some(config.seccomp_action),
        landlock_abi,
        landlock_all_threads,
        dumpable: false,
        memory_locked: config.lock_memory,
    };
    STATE.set(state).map_err(|_| LockdownError::AlreadyLocked)?;
    Ok(state)
}

/// A ruleset that handles every filesystem access right the kernel knows and grants none.
/// Returns the ABI enforced and whether it covers every thread.
fn landlock() -> Result<(Option<u8>, bool), LockdownError> {
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(ABI::V10))
        .and_then(|r| r.create())
        .and_then(|r| r.all_threads(true))
        .and_then(|r| r.restrict_self())
        .map_err(|_| LockdownError::Landlock)?;
    let abi = match (status.ruleset, status.landlock) {
        (RulesetStatus::NotEnforced, _) => None,
        (_, LandlockStatus::Available { effective_abi, .. }) => {
            u8::try_from(effective_abi as i32).ok()
        }
        (_, _) => None,
    };
    Ok((abi, abi.is_some() && status.all_threads))
}
