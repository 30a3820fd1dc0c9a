//! systemd's readiness protocol (`sd_notify`): under `Type=notify` the
//! service manager learns when Postern serves, and which process is the
//! main one after a binary upgrade (the new binary says `MAINPID=` itself;
//! the unit's `NotifyAccess=all` lets it, being the old one's child). No
//! `NOTIFY_SOCKET`, no message: outside systemd this does nothing.
//!
//! Never `STOPPING=1`: an old binary draining after an upgrade would tell
//! systemd the whole service is stopping; systemd's own stop needs no word.
//! Never `RELOADING=1`: under `Type=notify` systemd 253 and later would
//! want a `MONOTONIC_USEC=` with it and end the service without one.

use sd_notify::NotifyState;

/// Serving: ready, and this process is the service's main one.
pub fn ready() {
    let pid = std::process::id();
    send(&[NotifyState::Ready, NotifyState::MainPid(pid)]);
}

/// A new binary failed: this one is the main process again.
pub fn main_again() {
    send(&[NotifyState::MainPid(std::process::id())]);
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        log::warn!("telling systemd (NOTIFY_SOCKET) failed ({e})");
    }
}
