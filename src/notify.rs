//! systemd service notifications: `READY=1`, `WATCHDOG=1`, `STOPPING=1` (the `sd_notify`
//! protocol, for `Type=notify` units).
//!
//! # Design
//!
//! [`Notifier::from_env`] runs at start-up, before the sandbox locks: it reads `NOTIFY_SOCKET`,
//! opens an `AF_UNIX` datagram socket and connects it to that address (a path, or an abstract
//! name written with a leading `@`). From then on a notification is one `send` on the connected
//! socket, which needs no file system access and no new socket, so it keeps working inside the
//! sandbox. The socket is non-blocking: if systemd's queue is full a notification is dropped
//! rather than stalling the server.
//!
//! The watchdog pings from a task on the server's runtime, every half of `WATCHDOG_USEC` (when
//! `WATCHDOG_PID` is unset or names this process): a runtime that stops making progress stops
//! pinging, and systemd restarts the service.
//!
//! # Limits
//!
//! Without `NOTIFY_SOCKET` every method does nothing. Messages carry fixed words only, never
//! content. File descriptor passing (`FDSTORE=1`) is not used.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::time::Duration;

/// A connection to systemd's notification socket, or nothing when not run by systemd.
#[derive(Debug, Default)]
pub struct Notifier {
    socket: Option<UnixDatagram>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Connects to `$NOTIFY_SOCKET` and reads the watchdog period. Without the variable the
    /// notifier is inert; an address that cannot be reached is an error.
    pub fn from_env() -> io::Result<Notifier> {
        let watchdog = watchdog_interval(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
        );
        let Some(address) = std::env::var_os("NOTIFY_SOCKET") else {
            return Ok(Notifier::default());
        };
        let socket = connect(address.to_str().ok_or(io::ErrorKind::InvalidInput)?)?;
        socket.set_nonblocking(true)?;
        Ok(Notifier {
            socket: Some(socket),
            watchdog,
        })
    }

    /// The service is up: listeners bound, sandbox locked, requests served from now on.
    pub fn ready(&self) {
        self.send("READY=1\nSTATUS=serving");
    }

    /// The service is draining open requests before it exits.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=draining");
    }

    /// Starts the watchdog pings on the current Tokio runtime, if systemd asked for them.
    pub fn spawn_watchdog(self: &Arc<Self>) {
        let Some(period) = self.watchdog.filter(|_| self.socket.is_some()) else {
            return;
        };
        let notifier = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                notifier.send("WATCHDOG=1");
            }
        });
    }

    fn send(&self, message: &str) {
        if let Some(socket) = &self.socket {
            // Nothing to do about a lost notification: systemd's timeouts cover it.
            let _ = socket.send(message.as_bytes());
        }
    }
}

/// Opens a datagram socket connected to `address`: a file system path, or `@name` for a Linux
/// abstract socket.
fn connect(address: &str) -> io::Result<UnixDatagram> {
    let socket = UnixDatagram::unbound()?;
    if let Some(name) = address.strip_prefix('@') {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use std::os::linux::net::SocketAddrExt;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            socket.connect_addr(&address)?;
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let _ = name;
            return Err(io::ErrorKind::Unsupported.into());
        }
    } else if address.starts_with('/') {
        socket.connect(address)?;
    } else {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    Ok(socket)
}

/// Half of `WATCHDOG_USEC`, when the watchdog is meant for this process.
fn watchdog_interval(usec: Option<&str>, pid: Option<&str>) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    let usec = usec?.trim().parse::<u64>().ok().filter(|&n| n > 0)?;
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_pings_at_half_the_period_for_this_process_only() {
        let me = std::process::id().to_string();
        assert_eq!(
            watchdog_interval(Some("20000000"), None),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            watchdog_interval(Some("500000"), Some(&me)),
            Some(Duration::from_millis(250))
        );
        assert_eq!(watchdog_interval(Some("500000"), Some("1")), None);
        assert_eq!(watchdog_interval(Some("0"), None), None);
        assert_eq!(watchdog_interval(Some("soon"), None), None);
        assert_eq!(watchdog_interval(None, None), None);
    }

    #[test]
    fn messages_reach_path_and_abstract_sockets() {
        let dir = std::env::temp_dir().join(format!("lethe-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let by_path = UnixDatagram::bind(&dir).unwrap();
        let name = format!("@lethe-notify-test-{}", std::process::id());
        let by_name = {
            use std::os::linux::net::SocketAddrExt;
            let address =
                std::os::unix::net::SocketAddr::from_abstract_name(&name.as_bytes()[1..]).unwrap();
            UnixDatagram::bind_addr(&address).unwrap()
        };
        for (address, listener) in [(dir.to_str().unwrap(), &by_path), (&name, &by_name)] {
            let notifier = Notifier {
                socket: Some(connect(address).unwrap()),
                watchdog: None,
            };
            notifier.ready();
            let mut buf = [0u8; 64];
            let n = listener.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"READY=1\nSTATUS=serving");
        }
        assert!(connect("relative/path").is_err());
        let _ = std::fs::remove_file(&dir);
    }
}
