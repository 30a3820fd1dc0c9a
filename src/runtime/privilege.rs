//! The `user` directive: once the listeners are bound and the logs open,
//! a Postern started as root becomes that user, keeping only
//! CAP_NET_BIND_SERVICE so a reload can still bind ports below 1024.
//!
//! It must run before any other thread exists: setuid(2) through glibc
//! reaches every thread, but capabilities are per thread and new threads
//! copy their creator's, so the main thread sets them for all that follow.

use std::ffi::CString;
use std::path::PathBuf;

use crate::config::RunAs;

/// The outcome to log: what was done, or why nothing was.
pub enum Dropped {
    /// Now running as this uid/gid.
    To { uid: u32, gid: u32 },
    /// `user` given but not root: nginx ignores it with a warning too.
    NotRoot,
}

/// Becomes `run_as` when running as root. `log_files` (the error logs that
/// are files) are given to the user first so SIGUSR1 can reopen them
/// afterwards.
pub fn drop_to(run_as: &RunAs, log_files: &[PathBuf]) -> Result<Dropped, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(Dropped::NotRoot);
    }
    let (uid, user_gid) = lookup_user(&run_as.user)?;
    let gid = if run_as.group == run_as.user {
        lookup_group(&run_as.group).unwrap_or(Ok(user_gid))?
    } else {
        lookup_group(&run_as.group).unwrap_or_else(|| Err(format!("getgrnam(\"{}\") failed", run_as.group)))?
    };
    for path in log_files {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| format!("chown(\"{}\") failed ({e})", path.display()))?;
    }
    let name = CString::new(run_as.user.as_str()).map_err(|_| "the user name holds a NUL byte".to_string())?;
    // SAFETY: each call takes plain integers or a NUL-terminated string
    // that outlives it; the results are checked.
    unsafe {
        // Keep the permitted capabilities across setuid, to pick from below.
        check(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0), "prctl(PR_SET_KEEPCAPS)")?;
        check(libc::initgroups(name.as_ptr(), gid), "initgroups()")?;
        check(libc::setgid(gid), "setgid()")?;
        check(libc::setuid(uid), "setuid()")?;
        check(libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0), "prctl(PR_SET_KEEPCAPS)")?;
    }
    keep_only_bind_service()?;
    Ok(Dropped::To { uid, gid })
}

fn check(rc: libc::c_int, what: &str) -> Result<(), String> {
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("{what} failed ({})", std::io::Error::last_os_error()))
    }
}

/// The user's uid and primary gid.
fn lookup_user(name: &str) -> Result<(u32, u32), String> {
    let c_name = CString::new(name).map_err(|_| "the user name holds a NUL byte".to_string())?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: zeroed passwd is a valid out-parameter (plain data).
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and `buf` is as long as
    // said; on success `found` points at `entry`.
    let rc = unsafe { libc::getpwnam_r(c_name.as_ptr(), &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() {
        return Err(format!("getpwnam(\"{name}\") failed"));
    }
    Ok((entry.pw_uid, entry.pw_gid))
}

/// The group's gid; `None` when there is no such group.
fn lookup_group(name: &str) -> Option<Result<u32, String>> {
    let Ok(c_name) = CString::new(name) else {
        return Some(Err("the group name holds a NUL byte".to_string()));
    };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: zeroed group is a valid out-parameter (plain data).
    let mut entry: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in lookup_user.
    let rc = unsafe { libc::getgrnam_r(c_name.as_ptr(), &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() {
        return None;
    }
    Some(Ok(entry.gr_gid))
}

/// capset(2) with only CAP_NET_BIND_SERVICE permitted and effective.
fn keep_only_bind_service() -> Result<(), String> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_BIND_SERVICE: u32 = 10;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    // Version 3 takes two 32-bit words; bit 10 lives in the first.
    let mut data = [Data::default(); 2];
    data[0].effective = 1 << CAP_NET_BIND_SERVICE;
    data[0].permitted = 1 << CAP_NET_BIND_SERVICE;
    // SAFETY: header and data are the layouts capset(2) reads, valid for
    // the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_mut_ptr()) };
    if rc != 0 {
        return Err(format!("capset() failed ({})", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// For the warning nginx does not give but an operator wants: a mail proxy
/// facing the internet should not keep root.
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
