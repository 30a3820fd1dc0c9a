//! Start-up and the executors: one glommio executor per core, pinned, each
//! with its own SO_REUSEPORT listeners and sessions.

mod core;
pub mod cpus;
mod listener;
pub mod sys;
mod uring_probe;

use std::sync::mpsc;

use glommio::{LocalExecutorBuilder, Placement};

use crate::config::{Config, ListenAddr, Workers};
use crate::relay::RelayMode;

/// Command-line choices that shape the runtime; each overrides the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// `--cores`; `None` keeps `worker_processes`.
    pub cores: Option<Workers>,
    /// `--cpus`: the CPUs to run on, in order; `None` takes the process's
    /// affinity mask.
    pub cpus: Option<Vec<usize>>,
    /// `--no-pin` clears this: executors then float over the allowed CPUs.
    pub pin: bool,
    /// io_uring registered-buffer memory per executor. glommio's default
    /// (10 MiB) cannot be locked under the usual 8 MiB RLIMIT_MEMLOCK of a
    /// non-root user; sockets do not use registered buffers, so a small
    /// amount loses nothing.
    pub io_memory: usize,
    /// `--max-conns`: sessions per core, over `worker_connections`.
    pub max_conns: Option<usize>,
    /// `--relay`: splice (default) or copy.
    pub relay: RelayMode,
    /// `--pipe-size`: capacity asked for each splice pipe.
    pub pipe_size: usize,
}

/// The default `--pipe-size`: 1 MiB, measured best on these machines
/// (glommio-notes.md); the kernel's own default is 64 KiB.
pub const DEFAULT_PIPE_SIZE: usize = 1 << 20;

/// The default `--io-memory`.
pub const DEFAULT_IO_MEMORY: usize = 512 << 10;

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            cores: None,
            cpus: None,
            pin: true,
            io_memory: DEFAULT_IO_MEMORY,
            max_conns: None,
            relay: RelayMode::Splice,
            pipe_size: DEFAULT_PIPE_SIZE,
        }
    }
}

enum Event {
    Signal(i32),
    CoreEnded(usize, String),
}

/// Binds every listener, starts the cores and serves until a stop signal.
pub fn run(config: Config, options: RuntimeOptions) -> Result<(), String> {
    if config.servers.is_empty() {
        return Err(format!("no mail servers are configured in {}", config.file.display()));
    }
    uring_probe::probe()?;
    if let Some(limit) = config.main.worker_rlimit_nofile {
        sys::set_nofile(limit)?;
    }
    let allowed = match &options.cpus {
        Some(list) => list.clone(),
        None => cpus::allowed()?,
    };
    let cores = match options.cores.unwrap_or(config.main.worker_processes) {
        // `--cpus 0-3` alone means one core on each of those CPUs.
        Workers::Auto => allowed.len(),
        Workers::Count(n) => n,
    };
    if cores == 0 {
        return Err("the number of cores must be at least 1".to_string());
    }
    let max_sessions = options.max_conns.unwrap_or(config.main.worker_connections);
    // Unix sockets are bound once, here, and shared by every core.
    let mut unix_paths = Vec::new();
    let mut shared = Vec::new();
    for server in &config.servers {
        for listen in &server.listen {
            if let ListenAddr::Unix(path) = &listen.addr {
                shared.push((listener::bind_unix(path, &listen.params)?, server, path));
                unix_paths.push(path.clone());
            }
        }
    }
    let mut specs = Vec::with_capacity(cores);
    for index in 0..cores {
        let mut listeners = Vec::new();
        for server in &config.servers {
            for listen in &server.listen {
                if let ListenAddr::Tcp(addr) = &listen.addr {
                    listeners.push(core::CoreListener {
                        fd: listener::bind_tcp(*addr, &listen.params)?,
                        name: addr.to_string(),
                        server: server.clone(),
                    });
                }
            }
        }
        for (fd, server, path) in &shared {
            listeners.push(core::CoreListener {
                fd: fd
                    .try_clone()
                    .map_err(|e| format!("dup() of unix:{} failed ({e})", path.display()))?,
                name: format!("unix:{}", path.display()),
                server: (*server).clone(),
            });
        }
        specs.push(core::CoreSpec {
            index,
            cores,
            listeners,
            max_sessions,
            relay: options.relay,
            pipe_size: options.pipe_size,
        });
    }
    drop(shared);
    let pid_file = config.main.pid.clone();
    if let Some(path) = &pid_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| format!("open() \"{}\" failed ({e})", path.display()))?;
    }
    let (events, inbox) = mpsc::channel();
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])
        .map_err(|e| format!("installing signal handlers failed ({e})"))?;
    let signal_events = events.clone();
    std::thread::Builder::new()
        .name("postern-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal_events.send(Event::Signal(signal)).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| format!("starting the signal thread failed ({e})"))?;
    for spec in specs {
        // More cores than allowed CPUs share them round-robin.
        let cpu = allowed[spec.index % allowed.len()];
        let index = spec.index;
        let placement = if options.pin {
            Placement::Fixed(cpu)
        } else {
            Placement::Unbound
        };
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("postern-{index}"))
            .io_memory(options.io_memory)
            .spawn(move || core::run(spec))
            .map_err(|e| format!("starting the executor for core {index} on CPU {cpu} failed ({e})"))?;
        let core_events = events.clone();
        std::thread::spawn(move || {
            let why = match handle.join() {
                Ok(()) => "stopped".to_string(),
                Err(e) => format!("failed ({e})"),
            };
            let _ = core_events.send(Event::CoreEnded(index, why));
        });
    }
    crate::notice!(
        "postern {} started: {cores} core(s){}, {max_sessions} sessions per core, pid {}",
        env!("CARGO_PKG_VERSION"),
        if options.pin { "" } else { " unpinned" },
        std::process::id()
    );
    let outcome = match inbox.recv() {
        Ok(Event::Signal(signal)) => {
            crate::notice!("signal {signal} received, exiting");
            Ok(())
        }
        Ok(Event::CoreEnded(index, why)) => Err(format!("core {index} {why}")),
        Err(_) => Err("all cores ended".to_string()),
    };
    if let Some(path) = &pid_file {
        let _ = std::fs::remove_file(path);
    }
    for path in &unix_paths {
        let _ = std::fs::remove_file(path);
    }
    outcome
}
