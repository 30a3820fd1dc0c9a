//! Start-up and the executors: one glommio executor per core, pinned, each
//! with its own SO_REUSEPORT listeners and sessions.

mod core;
pub mod cpus;
mod listener;
mod uring_probe;

use std::sync::mpsc;

use glommio::{LocalExecutorBuilder, Placement};

use crate::config::{Config, ListenAddr, Workers};

/// Command-line choices that shape the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// `--cores`; `None` keeps `worker_processes`.
    pub cores: Option<Workers>,
    /// io_uring registered-buffer memory per executor. glommio's default
    /// (10 MiB) cannot be locked under the usual 8 MiB RLIMIT_MEMLOCK of a
    /// non-root user; sockets do not use registered buffers, so a small
    /// amount loses nothing.
    pub io_memory: usize,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            cores: None,
            io_memory: 512 << 10,
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
    let allowed = cpus::allowed()?;
    let cores = match options.cores.unwrap_or(config.main.worker_processes) {
        Workers::Auto => allowed.len(),
        Workers::Count(n) => n,
    };
    if cores == 0 {
        return Err("the number of cores must be at least 1".to_string());
    }
    let mut specs = Vec::with_capacity(cores);
    for index in 0..cores {
        let mut listeners = Vec::new();
        for server in &config.servers {
            for listen in &server.listen {
                let ListenAddr::Tcp(addr) = &listen.addr else {
                    return Err(format!("\"unix:\" listen is not supported yet in {}", listen.location));
                };
                listeners.push(core::CoreListener {
                    fd: listener::bind_tcp(*addr)?,
                    server: server.clone(),
                });
            }
        }
        specs.push(core::CoreSpec {
            index,
            cores,
            listeners,
            max_sessions: config.main.worker_connections,
        });
    }
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
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cpu))
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
        "postern {} started: {cores} core(s), pid {}",
        env!("CARGO_PKG_VERSION"),
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
    outcome
}
