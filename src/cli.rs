//! Command-line entry points. `main.rs` only calls [`run`].
//!
//! Errors are one static line on stderr plus, at most, a path or flag the operator typed; never
//! any of the text being scrubbed.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::{Config, Overrides, Sandbox as SandboxConfig, SeccompAction};
use crate::notify::Notifier;
use crate::sandbox;
use crate::scrub::{KindSet, Policy, Scrubber, Style, Utf8Input, Vault};
use crate::server::{inherited_listener, shutdown_signal, Server};

/// Read size for `lethe scrub`; output follows each read.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Parser, Debug)]
#[command(
    name = "lethe",
    version,
    about = "Zero-log PII and secret scrubbing for LLM traffic"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the proxy (built-in default config unless --config is given).
    Serve(ServeArgs),
    /// Validate a config file and explain what is wrong, by key name.
    CheckConfig {
        /// The TOML file.
        file: PathBuf,
    },
    /// Scrub stdin to stdout as it streams (UTF-8 text; lines are preserved).
    Scrub(ScrubArgs),
    /// Lock down child processes as `serve` does and try what the sandbox forbids.
    SandboxCheck {
        /// TOML config file whose [sandbox] section to check (default: the built-in one).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// One check of `sandbox-check`, in a child process.
    #[command(name = "__sandbox-probe", hide = true)]
    SandboxProbe {
        /// The seccomp action.
        #[arg(long, default_value = "kill")]
        action: String,
        /// Lock memory too.
        #[arg(long)]
        lock_memory: bool,
        /// The check to run.
        check: String,
    },
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// TOML config file (see examples/lethe.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen address, overriding server.listen (IP:PORT).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Origin for every openai-format route, such as http://127.0.0.1:9000.
    #[arg(long, value_name = "URL")]
    openai_upstream: Option<String>,
    /// Origin for every anthropic-format route.
    #[arg(long, value_name = "URL")]
    anthropic_upstream: Option<String>,
    /// Send metrics to this StatsD daemon (HOST:PORT), overriding statsd.address.
    #[arg(long, value_name = "HOST:PORT")]
    statsd: Option<String>,
}

#[derive(clap::Args, Debug)]
struct ScrubArgs {
    /// Comma-separated types to detect (credit_card, ssn, email, phone, ip_address, iban,
    /// api_key, jwt, private_key, dictionary), or `all`.
    #[arg(long, value_name = "LIST", value_parser = parse_types)]
    types: Option<KindSet>,
    /// Masking style for every type; by default cards are masked and the rest labelled.
    #[arg(long, value_name = "mask|label|placeholder", value_parser = parse_style)]
    style: Option<Style>,
    /// File with one dictionary term per line (customer names, code names).
    #[arg(long, value_name = "FILE")]
    dictionary: Option<PathBuf>,
}

fn parse_types(list: &str) -> Result<KindSet, String> {
    KindSet::parse_list(list).map_err(|e| e.to_string())
}

fn parse_style(name: &str) -> Result<Style, String> {
    Style::parse(name).ok_or_else(|| "expected mask, label or placeholder".to_owned())
}

/// Runs the command line `args` (program name first) and returns the process exit code.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    install_panic_hook();
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = write!(io::stdout(), "{e}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's message up to its usage lines, as one line: some messages name what is
            // wrong on the lines after the first.
            let rendered = e.render().to_string();
            let line = rendered
                .lines()
                .map(str::trim)
                .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
                .collect::<Vec<_>>()
                .join(" ");
            let line = line.trim_start_matches("error: ");
            fail(&format!(
                "lethe: {}",
                if line.is_empty() {
                    "invalid arguments"
                } else {
                    line
                }
            ));
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::CheckConfig { file } => check_config(&file),
        Command::Scrub(args) => scrub(args),
        Command::SandboxCheck { config } => sandbox_check(config.as_deref()),
        Command::SandboxProbe {
            action,
            lock_memory,
            check,
        } => match SeccompAction::parse(&action) {
            Some(seccomp_action) => ExitCode::from(sandbox::check::probe(
                &check,
                &SandboxConfig {
                    lock_memory,
                    seccomp_action,
                },
            )),
            None => ExitCode::from(2),
        },
    }
}

fn load_config(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ExitCode> {
    let loaded = match file {
        Some(path) => Config::load(path, overrides),
        None => Config::default_config(overrides),
    };
    loaded.map_err(|e| {
        fail(&format!("lethe: {e}"));
        ExitCode::from(2)
    })
}

fn check_config(file: &Path) -> ExitCode {
    match load_config(Some(file), &Overrides::default()) {
        Ok(config) => {
            // The same loading `serve` does, so a file that checks is a file that starts.
            if let Some((cert, key)) = &config.server.tls {
                if let Err(e) = crate::server::tls_acceptor(cert, key) {
                    fail(&format!("lethe: {}: {e}", file.display()));
                    return ExitCode::from(2);
                }
            }
            let _ = writeln!(
                io::stdout(),
                "{}: ok ({} route{}, listening on {})",
                file.display(),
                config.routes.len(),
                if config.routes.len() == 1 { "" } else { "s" },
                config.server.listen
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let overrides = Overrides {
        listen: args.listen,
        openai_upstream: args.openai_upstream,
        anthropic_upstream: args.anthropic_upstream,
        statsd: args.statsd,
    };
    let config = match load_config(args.config.as_deref(), &overrides) {
        Ok(c) => Arc::new(c),
        Err(code) => return code,
    };
    // Before the runtime's threads exist and before the sandbox locks: the allocator's lazy
    // set-up, systemd's notification socket and its listener.
    crate::alloc::prepare();
    let notifier = match Notifier::from_env() {
        Ok(n) => Arc::new(n),
        Err(_) => {
            fail("lethe: cannot connect to NOTIFY_SOCKET");
            return ExitCode::from(1);
        }
    };
    let inherited = match inherited_listener() {
        Ok(l) => l,
        Err(e) => {
            fail(&format!("lethe: {e}"));
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(_) => {
            fail("lethe: cannot start the runtime");
            return ExitCode::from(1);
        }
    };
    let sandbox_config = config.sandbox;
    runtime.block_on(async move {
        let server = match Server::bind(config.clone(), inherited).await {
            Ok(s) => s,
            Err(e) => {
                fail(&format!("lethe: {e}"));
                return ExitCode::from(1);
            }
        };
        // The StatsD socket and threads exist before the sandbox locks; without [statsd] no
        // recorder is installed and every metric is a no-op.
        if let Some(statsd) = &config.statsd {
            if let Err(e) = crate::metrics::install(statsd) {
                fail(&format!("lethe: {e}"));
                return ExitCode::from(1);
            }
        }
        let shutdown = shutdown_signal();
        if let Ok(addr) = server.local_addr() {
            let scheme = if server.is_tls() { "https" } else { "http" };
            fail(&format!("lethe: serving on {scheme}://{addr}"));
        }
        // Everything that reads a file is done above (see sandbox::prepare for what
        // dependencies would do lazily); nothing below may open one.
        if let Err(e) = sandbox::lockdown(&sandbox_config) {
            fail(&format!("lethe: {e}"));
            return ExitCode::from(1);
        }
        notifier.ready();
        notifier.spawn_watchdog();
        server
            .serve(async {
                shutdown.await;
                notifier.stopping();
            })
            .await;
        ExitCode::SUCCESS
    })
}

fn sandbox_check(file: Option<&Path>) -> ExitCode {
    let sandbox = match load_config(file, &Overrides::default()) {
        Ok(config) => config.sandbox,
        Err(code) => return code,
    };
    let Ok(exe) = std::env::current_exe() else {
        fail("lethe: cannot find its own executable");
        return ExitCode::from(1);
    };
    match sandbox::check::run(&exe, &sandbox, &mut io::stdout().lock()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(_) => {
            fail("lethe: cannot run the sandbox checks");
            ExitCode::from(1)
        }
    }
}

fn fail(line: &str) {
    let _ = writeln!(io::stderr(), "{line}");
}

/// Replaces the panic hook with one that prints one static line: a panic's payload and location
/// could carry content. [`run`] installs it before anything else, for every subcommand; it also
/// covers panics inside Tokio tasks, whose payload Tokio keeps in a `JoinError` nobody prints.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|_| {
        let _ = writeln!(io::stderr(), "lethe: internal error");
    }));
}

fn scrub(args: ScrubArgs) -> ExitCode {
    let mut policy = Policy::default();
    if let Some(kinds) = args.types {
        policy = policy.with_kinds(kinds);
    }
    if let Some(style) = args.style {
        policy = policy.with_style(style);
    }
    if let Some(path) = &args.dictionary {
        let Ok(terms) = std::fs::read_to_string(path) else {
            fail(&format!("lethe: cannot read dictionary {}", path.display()));
            return ExitCode::from(2);
        };
        policy = policy.with_terms(terms.lines().map(str::trim).filter(|t| !t.is_empty()));
    }
    let scrubber = match Scrubber::new(&policy) {
        Ok(s) => s,
        Err(e) => {
            fail(&format!("lethe: {e}"));
            return ExitCode::from(2);
        }
    };
    match scrub_stream(&scrubber, &mut io::stdin().lock(), &mut io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(ScrubError::InvalidUtf8) => {
            fail("lethe: input is not valid UTF-8");
            ExitCode::from(1)
        }
        Err(ScrubError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(ScrubError::Io(_)) => {
            fail("lethe: cannot read stdin or write stdout");
            ExitCode::from(1)
        }
    }
}

/// Why `scrub_stream` stopped.
#[derive(Debug, thiserror::Error)]
pub enum ScrubError {
    /// The input is not UTF-8.
    #[error("input is not valid UTF-8")]
    InvalidUtf8,
    /// Reading or writing failed.
    #[error("I/O error")]
    Io(#[from] io::Error),
}

/// Scrubs `input` to `output` as it reads: each read is scrubbed, written and flushed before the
/// next, so memory stays bounded by the read size plus the hold-back.
pub fn scrub_stream(
    scrubber: &Scrubber,
    input: &mut dyn Read,
    output: &mut dyn Write,
) -> Result<(), ScrubError> {
    let mut vault = Vault::new();
    let mut stream = scrubber.stream();
    let mut utf8 = Utf8Input::new();
    let mut buf = crate::alloc::Wiped::new(vec![0u8; READ_CHUNK]);
    let mut write_err: Option<io::Error> = None;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        utf8.feed(&buf[..n], &mut |text| {
            if write_err.is_none() {
                if let Err(e) = output.write_all(stream.push(text, &mut vault).as_bytes()) {
                    write_err = Some(e);
                }
            }
        })
        .map_err(|_| ScrubError::InvalidUtf8)?;
        if let Some(e) = write_err.take() {
            return Err(e.into());
        }
        output.flush()?;
    }
    utf8.finish().map_err(|_| ScrubError::InvalidUtf8)?;
    output.write_all(stream.finish(&mut vault).as_bytes())?;
    output.flush()?;
    Ok(())
}
