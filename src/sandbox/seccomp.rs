//! The seccomp allowlist: every syscall Lethe makes once it serves, with its argument rule and
//! the reason it is needed. Anything else gets the configured action (kill by default).
//!
//! # Design
//! [`ALLOWLIST`] is reviewed data, not code: one row per syscall, read top to bottom. The table
//! in SECURITY.md is generated from it ([`markdown_table`]) and a unit test keeps the two equal.
//! It was measured with `strace -f` on `lethe serve` under plain, streamed and TLS traffic, and
//! trimmed to what a serving process needs: no syscall that takes a path, no process creation,
//! no executable memory.
//!
//! Two filters are installed, both on every thread (TSYNC):
//! 1. the allowlist; its mismatch action is the operator's [`SeccompAction`];
//! 2. `clone3` answered `ENOSYS`: its flags live in memory that BPF cannot read, so it cannot be
//!    checked; glibc then falls back to `clone`, whose flags are checked. The allowlist lets
//!    `clone3` through so that the second filter's answer is the one that counts.
//!
//! # Limits
//! - Rules check register arguments only. Pointers (a `sockaddr`, a path) are out of reach,
//!   which is why every path-taking syscall is refused outright.
//! - x86_64 and aarch64 only. A name the architecture lacks (`epoll_wait` on aarch64) is
//!   skipped.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond,
    SeccompFilter, SeccompRule, TargetArch,
};

use crate::config::SeccompAction;

/// What a syscall's register arguments must satisfy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgRule {
    /// Any arguments.
    Any,
    /// `clone`: the flags make a thread (shared memory, signal handlers, thread group), never a
    /// process.
    ThreadFlags,
    /// The protection argument at this index has no `PROT_EXEC`.
    NoExec(u8),
    /// `socket`: IPv4 or IPv6 stream or datagram, or a Unix datagram socket.
    SocketFamilies,
    /// `prctl`: naming a thread, or naming anonymous memory (the allocator labels every mapping
    /// it makes).
    Naming,
    /// `tgkill`, `kill`: only this process.
    OwnProcess,
    /// Answered `ENOSYS` so that the C library falls back to a call that can be checked.
    Enosys,
}

impl ArgRule {
    /// The rule in words, for the table in SECURITY.md.
    pub const fn describe(self) -> &'static str {
        match self {
            ArgRule::Any => "any",
            ArgRule::ThreadFlags => "flags include `CLONE_VM`, `CLONE_THREAD`, `CLONE_SIGHAND`",
            ArgRule::NoExec(_) => "`prot` without `PROT_EXEC`",
            ArgRule::SocketFamilies => {
                "`AF_INET`/`AF_INET6` with `SOCK_STREAM` or `SOCK_DGRAM`; `AF_UNIX` with `SOCK_DGRAM`"
            }
            ArgRule::Naming => "`PR_SET_NAME`, or `PR_SET_VMA` with `PR_SET_VMA_ANON_NAME`, only",
            ArgRule::OwnProcess => "this process's id only",
            ArgRule::Enosys => "always answered `ENOSYS`",
        }
    }
}

/// One row of the allowlist.
#[derive(Clone, Copy, Debug)]
pub struct Allowed {
    /// The syscall's name.
    pub name: &'static str,
    /// What its arguments must satisfy.
    pub rule: ArgRule,
    /// Why Lethe needs it.
    pub why: &'static str,
}

const fn allow(name: &'static str, rule: ArgRule, why: &'static str) -> Allowed {
    Allowed { name, rule, why }
}

use ArgRule::{Any, Enosys, Naming, NoExec, OwnProcess, SocketFamilies, ThreadFlags};

/// Every syscall allowed after lockdown.
pub const ALLOWLIST: &[Allowed] = &[
    // Sockets and descriptors.
    allow("read", Any, "sockets, the runtime's eventfd and signal pipe"),
    allow("write", Any, "sockets, waking the runtime (eventfd)"),
    allow("writev", Any, "sockets (vectored writes by hyper)"),
    allow("close", Any, "closing sockets"),
    allow("fcntl", Any, "descriptor flags (non-blocking, close-on-exec)"),
    allow("socket", SocketFamilies, "upstream TCP connections, DNS over UDP and TCP, StatsD and the service manager's notify socket"),
    allow("connect", Any, "upstream and DNS connections"),
    allow("bind", Any, "DNS client sockets bind an ephemeral port"),
    allow("accept4", Any, "client connections"),
    allow("shutdown", Any, "closing TCP connections cleanly"),
    allow("getsockname", Any, "local address of a socket"),
    allow("getpeername", Any, "peer address of a socket"),
    allow("getsockopt", Any, "socket errors after a non-blocking connect (`SO_ERROR`)"),
    allow("setsockopt", Any, "`TCP_NODELAY`, keep-alive, socket buffer options"),
    allow("sendto", Any, "socket writes, DNS queries, StatsD datagrams"),
    allow("recvfrom", Any, "socket reads, DNS answers"),
    allow("sendmsg", Any, "socket writes, datagrams"),
    allow("recvmsg", Any, "socket reads, datagrams"),
    // Event loop.
    allow("epoll_wait", Any, "the runtime's reactor"),
    allow("epoll_pwait", Any, "the runtime's reactor"),
    allow("epoll_ctl", Any, "registering sockets with the reactor"),
    // Memory.
    allow("mmap", NoExec(2), "the allocator and thread stacks; never executable"),
    allow("mprotect", NoExec(2), "thread stack guard pages; never executable"),
    allow("munmap", Any, "the allocator and thread stacks"),
    allow("madvise", Any, "the allocator returns freed pages to the kernel"),
    allow("brk", Any, "the C library's small allocations"),
    // Threads and scheduling.
    allow("clone", ThreadFlags, "the runtime's worker and blocking threads"),
    allow("clone3", Enosys, "its flags cannot be checked: the C library falls back to `clone`"),
    allow("set_robust_list", Any, "every new thread (the C library)"),
    allow("rseq", Any, "every new thread (the C library)"),
    allow("prctl", Naming, "naming runtime threads; the allocator names the memory it maps"),
    allow("futex", Any, "locks, condition variables, thread parking"),
    allow("sched_yield", Any, "spin loops in locks and the runtime"),
    allow("sched_getaffinity", Any, "CPU count when a thread pool grows"),
    allow("getcpu", Any, "the allocator's NUMA node on multi-node machines"),
    allow("gettid", Any, "thread ids (the C library, the allocator)"),
    allow("getpid", Any, "the process id (the C library)"),
    allow("clock_nanosleep", Any, "short sleeps"),
    allow("clock_gettime", Any, "time, when the vDSO is not used"),
    allow("getrandom", Any, "TLS keys and nonces, DNS query ids and ports, hash seeds"),
    // Signals and exit.
    allow("rt_sigaction", Any, "signal handlers (the runtime, the standard library)"),
    allow("rt_sigprocmask", Any, "masking signals around thread creation"),
    allow("rt_sigreturn", Any, "returning from a signal handler"),
    allow("sigaltstack", Any, "each thread's stack-overflow handler stack"),
    allow("tgkill", OwnProcess, "`abort()` on a fatal error (panics abort)"),
    allow("restart_syscall", Any, "resuming a call interrupted by a signal"),
    allow("exit", Any, "a thread ends"),
    allow("exit_group", Any, "the process ends"),
];

/// The syscall's number on this architecture, `None` when it has no such syscall.
pub fn number(name: &str) -> Option<i64> {
    #[cfg(target_arch = "x86_64")]
    if name == "epoll_wait" {
        return Some(libc::SYS_epoll_wait);
    }
    let nr = match name {
        "read" => libc::SYS_read,
        "write" => libc::SYS_write,
        "writev" => libc::SYS_writev,
        "close" => libc::SYS_close,
        "fcntl" => libc::SYS_fcntl,
        "socket" => libc::SYS_socket,
        "connect" => libc::SYS_connect,
        "bind" => libc::SYS_bind,
        "accept4" => libc::SYS_accept4,
        "shutdown" => libc::SYS_shutdown,
        "getsockname" => libc::SYS_getsockname,
        "getpeername" => libc::SYS_getpeername,
        "getsockopt" => libc::SYS_getsockopt,
        "setsockopt" => libc::SYS_setsockopt,
        "sendto" => libc::SYS_sendto,
        "recvfrom" => libc::SYS_recvfrom,
        "sendmsg" => libc::SYS_sendmsg,
        "recvmsg" => libc::SYS_recvmsg,
        "epoll_pwait" => libc::SYS_epoll_pwait,
        "epoll_ctl" => libc::SYS_epoll_ctl,
        "mmap" => libc::SYS_mmap,
        "mprotect" => libc::SYS_mprotect,
        "munmap" => libc::SYS_munmap,
        "madvise" => libc::SYS_madvise,
        "brk" => libc::SYS_brk,
        "clone" => libc::SYS_clone,
        "clone3" => libc::SYS_clone3,
        "set_robust_list" => libc::SYS_set_robust_list,
        "rseq" => libc::SYS_rseq,
        "prctl" => libc::SYS_prctl,
        "futex" => libc::SYS_futex,
        "sched_yield" => libc::SYS_sched_yield,
        "sched_getaffinity" => libc::SYS_sched_getaffinity,
        "getcpu" => libc::SYS_getcpu,
        "gettid" => libc::SYS_gettid,
        "getpid" => libc::SYS_getpid,
        "clock_nanosleep" => libc::SYS_clock_nanosleep,
        "clock_gettime" => libc::SYS_clock_gettime,
        "getrandom" => libc::SYS_getrandom,
        "rt_sigaction" => libc::SYS_rt_sigaction,
        "rt_sigprocmask" => libc::SYS_rt_sigprocmask,
        "rt_sigreturn" => libc::SYS_rt_sigreturn,
        "sigaltstack" => libc::SYS_sigaltstack,
        "tgkill" => libc::SYS_tgkill,
        "restart_syscall" => libc::SYS_restart_syscall,
        "exit" => libc::SYS_exit,
        "exit_group" => libc::SYS_exit_group,
        _ => return None,
    };
    Some(nr)
}

/// Why a filter could not be built. Static text only.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// This architecture has no syscall table here.
    #[error("seccomp is not supported on this architecture")]
    Arch,
    /// seccompiler refused a rule or could not compile the filter.
    #[error("the seccomp filter does not compile")]
    Compile,
}

/// The argument conditions of one rule; several rules for one syscall are alternatives.
fn rules(rule: ArgRule, pid: u32) -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
    let one = |conds: Vec<Cond>| SeccompRule::new(conds);
    Ok(match rule {
        ArgRule::Any | ArgRule::Enosys => Vec::new(),
        ArgRule::ThreadFlags => {
            let thread = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
            vec![one(vec![Cond::new(
                0,
                Len::Qword,
                Op::MaskedEq(thread),
                thread,
            )?])?]
        }
        ArgRule::NoExec(arg) => vec![one(vec![Cond::new(
            arg,
            Len::Dword,
            Op::MaskedEq(libc::PROT_EXEC as u64),
            0,
        )?])?],
        ArgRule::SocketFamilies => {
            let kind = |domain: i32, ty: i32| -> Result<SeccompRule, seccompiler::BackendError> {
                one(vec![
                    Cond::new(0, Len::Dword, Op::Eq, domain as u64)?,
                    // The low bits are the type; SOCK_NONBLOCK and SOCK_CLOEXEC sit above.
                    Cond::new(1, Len::Dword, Op::MaskedEq(0xf), ty as u64)?,
                ])
            };
            vec![
                kind(libc::AF_INET, libc::SOCK_STREAM)?,
                kind(libc::AF_INET, libc::SOCK_DGRAM)?,
                kind(libc::AF_INET6, libc::SOCK_STREAM)?,
                kind(libc::AF_INET6, libc::SOCK_DGRAM)?,
                kind(libc::AF_UNIX, libc::SOCK_DGRAM)?,
            ]
        }
        ArgRule::Naming => vec![
            one(vec![Cond::new(
                0,
                Len::Dword,
                Op::Eq,
                libc::PR_SET_NAME as u64,
            )?])?,
            one(vec![
                Cond::new(0, Len::Dword, Op::Eq, libc::PR_SET_VMA as u64)?,
                Cond::new(1, Len::Qword, Op::Eq, libc::PR_SET_VMA_ANON_NAME as u64)?,
            ])?,
        ],
        ArgRule::OwnProcess => vec![one(vec![Cond::new(
            0,
            Len::Dword,
            Op::Eq,
            u64::from(pid),
        )?])?],
    })
}

fn target_arch() -> Result<TargetArch, FilterError> {
    std::env::consts::ARCH
        .try_into()
        .map_err(|_| FilterError::Arch)
}

/// Compiles the two filters for this process (`pid` for the own-process rules): the allowlist
/// with `action` for everything else, and the `ENOSYS` answers.
pub fn filters(action: SeccompAction, pid: u32) -> Result<[BpfProgram; 2], FilterError> {
    let arch = target_arch()?;
    let mut allowed = BTreeMap::new();
    let mut enosys = BTreeMap::new();
    for row in ALLOWLIST {
        let Some(nr) = number(row.name) else { continue };
        let conditions = rules(row.rule, pid).map_err(|_| FilterError::Compile)?;
        allowed.insert(nr, conditions);
        if row.rule == ArgRule::Enosys {
            enosys.insert(nr, Vec::new());
        }
    }
    let mismatch = match action {
        SeccompAction::Kill => seccompiler::SeccompAction::KillProcess,
        SeccompAction::Errno => seccompiler::SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Log => seccompiler::SeccompAction::Log,
    };
    let allowlist = SeccompFilter::new(allowed, mismatch, seccompiler::SeccompAction::Allow, arch)
        .and_then(BpfProgram::try_from)
        .map_err(|_| FilterError::Compile)?;
    let answers = SeccompFilter::new(
        enosys,
        seccompiler::SeccompAction::Allow,
        seccompiler::SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .and_then(BpfProgram::try_from)
    .map_err(|_| FilterError::Compile)?;
    Ok([allowlist, answers])
}

/// The allowlist as the Markdown table in SECURITY.md.
pub fn markdown_table() -> String {
    let mut out = String::from("| syscall | arguments | why |\n|---|---|---|\n");
    for row in ALLOWLIST {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            row.name,
            row.rule.describe(),
            row.why
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_names_a_syscall_once() {
        let mut seen = std::collections::HashSet::new();
        for row in ALLOWLIST {
            assert!(seen.insert(row.name), "{} twice", row.name);
            #[cfg(target_arch = "x86_64")]
            assert!(number(row.name).is_some(), "{} has no number", row.name);
            assert!(!row.why.is_empty());
        }
    }

    /// Syscalls that must never be on the list.
    #[rustfmt::skip]
    const FORBIDDEN: &[&str] = &[
        "open", "openat", "openat2", "creat", "unlink", "unlinkat", "rename", "renameat",
        "renameat2", "mkdir", "mkdirat", "execve", "execveat", "fork", "vfork", "ptrace",
        "stat", "newfstatat", "statx", "access", "faccessat", "readlink", "readlinkat",
        "truncate", "chmod", "chown", "link", "symlink", "mount", "memfd_create",
        "pkey_mprotect", "socketpair", "listen", "ioctl",
    ];

    #[test]
    fn nothing_that_takes_a_path_or_starts_a_process_is_allowed() {
        for name in FORBIDDEN {
            assert!(
                ALLOWLIST.iter().all(|row| row.name != *name),
                "{name} is allowed"
            );
        }
    }

    #[test]
    fn filters_compile_for_every_action() {
        for action in [
            SeccompAction::Kill,
            SeccompAction::Errno,
            SeccompAction::Log,
        ] {
            let [allowlist, answers] = filters(action, 1).unwrap();
            assert!(!allowlist.is_empty() && !answers.is_empty());
        }
    }

    #[test]
    fn security_md_shows_this_table() {
        let doc = include_str!("../../SECURITY.md");
        assert!(
            doc.contains(&markdown_table()),
            "SECURITY.md's syscall table differs from the allowlist; paste this:\n{}",
            markdown_table()
        );
    }
}
