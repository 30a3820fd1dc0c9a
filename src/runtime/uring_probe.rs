//! glommio has no fallback when io_uring is missing: its executor threads
//! panic and poison a global. Postern asks the kernel itself first and exits
//! with a message an operator can act on.

/// `struct io_uring_params` is 120 bytes on every Linux ABI.
const IO_URING_PARAMS_SIZE: usize = 120;

pub fn probe() -> Result<(), String> {
    if let Ok(text) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        if text.trim() == "2" {
            return Err("io_uring is disabled on this machine (kernel.io_uring_disabled = 2); \
                        Postern needs it: set the sysctl to 0"
                .to_string());
        }
    }
    let mut params = [0u8; IO_URING_PARAMS_SIZE];
    // SAFETY: io_uring_setup(2) writes at most sizeof(struct io_uring_params)
    // bytes into `params`, which is that large and lives across the call.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        let hint = match err.raw_os_error() {
            Some(libc::ENOSYS) => "the kernel is too old or built without io_uring",
            Some(libc::EPERM) => "io_uring is forbidden here (kernel.io_uring_disabled, or a seccomp filter such as a container runtime's)",
            Some(libc::ENOMEM) => "RLIMIT_MEMLOCK is too low",
            _ => "io_uring_setup() failed",
        };
        return Err(format!("io_uring is not available ({err}): {hint}"));
    }
    let fd = i32::try_from(fd).map_err(|_| "io_uring_setup() returned an invalid fd".to_string())?;
    // SAFETY: `fd` was just returned by io_uring_setup and is owned by no one
    // else; closing it once releases the probe ring.
    unsafe { libc::close(fd) };
    Ok(())
}
