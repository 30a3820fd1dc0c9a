//! The pid file, locked for the life of the process. With SO_REUSEPORT a
//! second Postern could bind the same ports and silently share the traffic;
//! the lock makes it refuse to start instead.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct PidFile {
    file: File,
    path: PathBuf,
}

impl PidFile {
    /// Opens and locks `path` (flock, exclusive); fails when another process
    /// holds it. Nothing is written yet: see `write_pid`.
    pub fn lock(path: &Path) -> Result<PidFile, String> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| format!("open() \"{}\" failed ({e})", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(PidFile {
                file,
                path: path.to_path_buf(),
            }),
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                Err(format!(
                    "another postern (pid {}) holds the pid file \"{}\"",
                    holder.trim(),
                    path.display()
                ))
            }
            Err(TryLockError::Error(e)) => Err(format!("flock() \"{}\" failed ({e})", path.display())),
        }
    }

    /// Writes this process's pid, once every listener is bound.
    pub fn write_pid(&mut self) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("write() to \"{}\" failed ({e})", self.path.display());
        self.file.set_len(0).map_err(fail)?;
        self.file.seek(SeekFrom::Start(0)).map_err(fail)?;
        self.file
            .write_all(format!("{}\n", std::process::id()).as_bytes())
            .map_err(fail)
    }
}

impl PidFile {
    /// SIGUSR2: the new binary takes the configured name, this process's
    /// file becomes `<name>.oldbin` (the lock stays with the open file).
    pub fn rename_to_oldbin(&mut self) -> Result<(), String> {
        let mut old = self.path.clone().into_os_string();
        old.push(".oldbin");
        let old = PathBuf::from(old);
        std::fs::rename(&self.path, &old).map_err(|e| {
            format!(
                "rename() \"{}\" to \"{}\" failed ({e})",
                self.path.display(),
                old.display()
            )
        })?;
        self.path = old;
        Ok(())
    }

    /// Takes the configured name back when the new binary failed.
    pub fn restore_name(&mut self) -> Result<(), String> {
        let Some(name) = self
            .path
            .to_str()
            .and_then(|p| p.strip_suffix(".oldbin"))
            .map(PathBuf::from)
        else {
            return Ok(());
        };
        std::fs::rename(&self.path, &name).map_err(|e| {
            format!(
                "rename() \"{}\" to \"{}\" failed ({e})",
                self.path.display(),
                name.display()
            )
        })?;
        self.path = name;
        Ok(())
    }
}

impl Drop for PidFile {
    /// Removed on exit, while still locked, so no second instance can take
    /// the file in between and lose it.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `-s`: sends `signal` to the process whose pid `path` holds.
pub fn signal_running(path: &Path, signal: i32) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("open() \"{}\" failed ({e})", path.display()))?;
    let pid: libc::pid_t = text
        .trim()
        .parse()
        .ok()
        .filter(|&pid| pid > 0)
        .ok_or_else(|| format!("invalid PID number \"{}\" in \"{}\"", text.trim(), path.display()))?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(format!(
            "kill({pid}, {signal}) failed ({})",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_the_file_goes_at_drop() {
        let path = std::env::temp_dir().join(format!("postern-pid-test-{}.pid", std::process::id()));
        let mut first = PidFile::lock(&path).unwrap();
        first.write_pid().unwrap();
        let err = PidFile::lock(&path).unwrap_err();
        assert_eq!(
            err,
            format!(
                "another postern (pid {}) holds the pid file \"{}\"",
                std::process::id(),
                path.display()
            )
        );
        drop(first);
        assert!(!path.exists());
        let again = PidFile::lock(&path).unwrap();
        drop(again);
    }
}
