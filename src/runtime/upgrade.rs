//! Binary upgrade without dropping a session, as nginx's SIGUSR2: the
//! running Postern starts the new binary with its listening sockets
//! inherited (named in `POSTERN_INHERIT`), both accept on them, and the old
//! one drains on SIGQUIT. Long sessions (IMAP IDLE) stay in the old process
//! until they end.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// The environment variable that lists the inherited sockets:
/// `NAME=FD,FD;NAME=FD`, the names as cores know their listeners.
pub const ENV: &str = "POSTERN_INHERIT";

/// The listening sockets this process serves, by name: one per core for a
/// TCP address, one shared for a unix path. Kept (as duplicates) so the
/// main thread can hand them to a new binary.
#[derive(Default)]
pub struct Listening {
    by_name: BTreeMap<String, Vec<OwnedFd>>,
}

impl Listening {
    pub fn add(&mut self, name: &str, fd: &OwnedFd) -> Result<(), String> {
        let dup = fd.try_clone().map_err(|e| format!("dup() of {name} failed ({e})"))?;
        self.by_name.entry(name.to_string()).or_default().push(dup);
        Ok(())
    }

    pub fn remove(&mut self, name: &str) {
        self.by_name.remove(name);
    }

    /// Starts the same binary, with the same arguments, inheriting every
    /// socket. The child's stderr is ours, so its start-up is seen where
    /// ours was.
    pub fn spawn_new_binary(&self) -> Result<Child, String> {
        let exe = std::env::current_exe().map_err(|e| format!("the running binary's path is unknown ({e})"))?;
        let fds: Vec<RawFd> = self.by_name.values().flatten().map(AsRawFd::as_raw_fd).collect();
        let list = self
            .by_name
            .iter()
            .map(|(name, fds)| {
                let fds: Vec<String> = fds.iter().map(|fd| fd.as_raw_fd().to_string()).collect();
                format!("{name}={}", fds.join(","))
            })
            .collect::<Vec<_>>()
            .join(";");
        let mut cmd = Command::new(&exe);
        cmd.args(std::env::args_os().skip(1)).env(ENV, list);
        // SAFETY: the closure runs in the child between fork and exec and
        // only calls fcntl(2), which is async-signal-safe; the fds are
        // open in the parent, so they are open in the child.
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &fds {
                    // Our duplicates are close-on-exec; the new binary needs them.
                    if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        cmd.spawn()
            .map_err(|e| format!("starting {} failed ({e})", exe.display()))
    }
}

/// Sockets inherited from the Postern that started this one, by name.
#[derive(Default)]
pub struct Inherited {
    by_name: BTreeMap<String, Vec<OwnedFd>>,
}

impl Inherited {
    /// Reads and clears `POSTERN_INHERIT`. Anything malformed is skipped
    /// with a warning: the listener is then bound afresh.
    pub fn from_env() -> Inherited {
        let mut by_name: BTreeMap<String, Vec<OwnedFd>> = BTreeMap::new();
        let Some(list) = std::env::var_os(ENV) else {
            return Inherited { by_name };
        };
        // Not passed on to anything this process starts later.
        std::env::remove_var(ENV);
        let list = list.to_string_lossy();
        for entry in list.split(';').filter(|e| !e.is_empty()) {
            let Some((name, fds)) = entry.rsplit_once('=') else {
                log::warn!("{ENV}: \"{entry}\" is not NAME=FD,...; ignored");
                continue;
            };
            for fd in fds.split(',') {
                match fd.parse::<RawFd>() {
                    Ok(fd) if is_listening_socket(fd) => {
                        // SAFETY: the parent left this fd open for us and
                        // nothing else in this process owns it.
                        by_name
                            .entry(name.to_string())
                            .or_default()
                            .push(unsafe { OwnedFd::from_raw_fd(fd) });
                    }
                    _ => log::warn!("{ENV}: \"{fd}\" for {name} is not a listening socket; ignored"),
                }
            }
        }
        Inherited { by_name }
    }

    /// One inherited socket of `name`, if any is left.
    pub fn take(&mut self, name: &str) -> Option<OwnedFd> {
        let fds = self.by_name.get_mut(name)?;
        let fd = fds.pop();
        if fds.is_empty() {
            self.by_name.remove(name);
        }
        fd
    }

    /// How many were inherited and are still unused.
    pub fn count(&self) -> usize {
        self.by_name.values().map(Vec::len).sum()
    }

    /// The names of sockets this configuration no longer has; they close
    /// when `self` drops, which leaves them to the parent.
    pub fn leftover(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }
}

/// A fd that is a socket in the listening state (SO_ACCEPTCONN).
fn is_listening_socket(fd: RawFd) -> bool {
    let mut on: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `on`, which lives
    // across the call; a fd that is not ours or not a socket just fails.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut on as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0 && on == 1
}
