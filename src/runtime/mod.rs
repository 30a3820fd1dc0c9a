//! Start-up and the executors: one glommio executor per core, pinned, each
//! with its own SO_REUSEPORT listeners and sessions.

mod core;
pub mod cpus;
mod listener;
mod pid;
mod privilege;
mod service;
pub mod sys;
mod upgrade;
mod uring_probe;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};

use glommio::{LocalExecutorBuilder, Placement};

use crate::config::{Config, ListenAddr, ListenParams, MainConfig, ServerConfig, Workers};
use crate::relay::RelayMode;
use crate::session::{ServerSetup, TlsSetup};

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
    /// `--spin-before-park`: how long an idle executor spins first.
    pub spin_before_park: std::time::Duration,
    /// `--ktls`.
    pub ktls: crate::tls::ktls::KtlsMode,
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
            spin_before_park: std::time::Duration::ZERO,
            ktls: crate::tls::ktls::KtlsMode::Auto,
        }
    }
}

enum Event {
    Signal(i32),
    CoreEnded(usize, String),
    /// The binary started by SIGUSR2 exited, with this status.
    SuccessorEnded(u32, String),
}

/// Reads the configuration again, for SIGHUP.
pub type Reload<'a> = &'a dyn Fn() -> Result<Config, String>;

/// Binds every listener, starts the cores and serves until a stop signal;
/// SIGHUP runs `reload` and applies what it returns.
pub fn run(config: Config, options: RuntimeOptions, reload: Reload<'_>) -> Result<(), String> {
    if config.servers.is_empty() {
        return Err(format!("no mail servers are configured in {}", config.file.display()));
    }
    uring_probe::probe()?;
    // Locked before anything is bound: a second instance must fail here,
    // not share the ports through SO_REUSEPORT.
    let mut pid_file = config.main.pid.as_deref().map(pid::PidFile::lock).transpose()?;
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
    // Before the rustls configs are built: whether the keys may leave
    // rustls depends on it. Any server may use TLS toward its backends
    // (`Auth-SSL-Backend`), so it is decided for all.
    crate::tls::ktls::configure(options.ktls);
    let tls = tls_setups(&config)?;
    // Sockets handed over by the Postern this one upgrades (SIGUSR2) are
    // used instead of binding: both then accept on them.
    let mut inherited = upgrade::Inherited::from_env();
    let inherited_count = inherited.count();
    let mut listening = upgrade::Listening::default();
    // Unix sockets are bound once, here, and shared by every core.
    let mut unix_paths = Vec::new();
    let mut shared = Vec::new();
    for (server, tls) in config.servers.iter().zip(&tls) {
        for listen in &server.listen {
            if let ListenAddr::Unix(path) = &listen.addr {
                let name = listen_name(&listen.addr);
                let fd = match inherited.take(&name) {
                    Some(fd) => fd,
                    None => listener::bind_unix(path, &listen.params)?,
                };
                listening.add(&name, &fd)?;
                shared.push((fd, setup(server, tls, listen), path));
                unix_paths.push(path.clone());
            }
        }
    }
    let metrics = match config.main.metrics_listen {
        Some(addr) => Some(metrics_socket(addr, cores, &mut inherited, &mut listening)?),
        None => None,
    };
    let mut specs = Vec::with_capacity(cores);
    for index in 0..cores {
        let mut listeners = Vec::new();
        for (server, tls) in config.servers.iter().zip(&tls) {
            for listen in &server.listen {
                if let ListenAddr::Tcp(addr) = &listen.addr {
                    let name = addr.to_string();
                    let fd = match inherited.take(&name) {
                        Some(fd) => fd,
                        None => listener::bind_tcp(*addr, &listen.params)?,
                    };
                    listening.add(&name, &fd)?;
                    listeners.push(core::CoreListener {
                        fd,
                        name,
                        server: setup(server, tls, listen),
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
                server: server.clone(),
            });
        }
        specs.push(core::CoreSpec {
            index,
            cores,
            listeners,
            max_sessions,
            relay: options.relay,
            pipe_size: options.pipe_size,
            shutdown_timeout: config.main.worker_shutdown_timeout,
            metrics: metrics.as_ref().and_then(|(_, registry)| registry.core(index)),
        });
    }
    drop(shared);
    if inherited_count > 0 {
        crate::notice!(
            "using {} inherited listening socket(s)",
            inherited_count - inherited.count()
        );
    }
    if inherited.count() > 0 {
        // Ours to close; the process that passed them keeps its own.
        crate::notice!(
            "closing {} inherited socket(s) this configuration does not use: {}",
            inherited.count(),
            inherited.leftover().join(", ")
        );
    }
    drop(inherited);
    if let Some(pid) = &mut pid_file {
        pid.write_pid()?;
    }
    // Opened as the user Postern starts as, and handed over by `user`.
    crate::logging::open_server_logs(&config)?;
    // Before any other thread exists: see privilege.rs.
    become_user(&config)?;
    let (events, inbox) = mpsc::channel();
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGHUP, SIGUSR2])
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
    let mut handles = Vec::with_capacity(cores);
    for spec in specs {
        // More cores than allowed CPUs share them round-robin.
        let cpu = allowed[spec.index % allowed.len()];
        let index = spec.index;
        let placement = if options.pin {
            Placement::Fixed(cpu)
        } else {
            Placement::Unbound
        };
        let (control, core_end) =
            UnixStream::pair().map_err(|e| format!("socketpair() for core {index} failed ({e})"))?;
        let (plans, reloads) = mpsc::channel();
        handles.push(CoreHandle { control, plans });
        let core_end = OwnedFd::from(core_end);
        if options.pin {
            crate::notice!("start core {index} on CPU {cpu}");
        } else {
            crate::notice!("start core {index}");
        }
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("postern-{index}"))
            .io_memory(options.io_memory)
            .spin_before_park(options.spin_before_park)
            .spawn(move || core::run(spec, core_end, reloads))
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
    if let (Some((fd, registry)), Some(addr)) = (metrics, config.main.metrics_listen) {
        crate::metrics::http::spawn(fd, registry)?;
        crate::notice!("metrics on http://{addr}/metrics");
    }
    crate::notice!("{}", open_files_limit());
    crate::notice!(
        "postern/{} started: {cores} core(s){}, {max_sessions} sessions per core, pid {}",
        env!("CARGO_PKG_VERSION"),
        if options.pin { "" } else { " unpinned" },
        std::process::id()
    );
    service::ready();
    let mut state = Supervisor {
        current: config,
        reload,
        handles,
        unix_paths,
        listening,
        pid_file,
        events,
        successor: None,
    };
    let outcome = state.supervise(&inbox);
    // A successor serves the same unix paths: they are its now.
    if state.successor.is_none() {
        for path in &state.unix_paths {
            let _ = std::fs::remove_file(path);
        }
    }
    drop(state.pid_file);
    outcome
}

/// `metrics_listen`'s socket (inherited from the binary this one upgrades,
/// or bound) and the counters of every core. The counters live as long as
/// the process: cores and the scrape thread hold them to the end.
fn metrics_socket(
    addr: std::net::SocketAddr,
    cores: usize,
    inherited: &mut upgrade::Inherited,
    listening: &mut upgrade::Listening,
) -> Result<(OwnedFd, &'static crate::metrics::Registry), String> {
    let name = crate::metrics::http::socket_name(addr);
    let fd = match inherited.take(&name) {
        Some(fd) => fd,
        None => crate::metrics::http::bind(addr)?,
    };
    listening.add(&name, &fd)?;
    Ok((fd, Box::leak(Box::new(crate::metrics::Registry::new(cores)))))
}

/// The `user` directive, once the sockets are bound, the logs and the pid
/// file open.
fn become_user(config: &Config) -> Result<(), String> {
    match &config.main.user {
        Some(run_as) => match privilege::drop_to(run_as, &crate::logging::file_paths())? {
            privilege::Dropped::To { uid, gid } => crate::notice!(
                "running as user \"{}\" (uid {uid}, gid {gid}), keeping only CAP_NET_BIND_SERVICE",
                run_as.user
            ),
            privilege::Dropped::NotRoot => {
                log::warn!("the \"user\" directive makes sense only if postern starts as root, ignored")
            }
        },
        None if privilege::running_as_root() => log::warn!(
            "running as root: the \"user\" directive would drop to an unprivileged user once the listeners are bound"
        ),
        None => {}
    }
    Ok(())
}

/// `-s`: signals the Postern that holds `config`'s pid file.
pub fn signal_running(config: &Config, signal: i32) -> Result<(), String> {
    let path = config.main.pid.as_deref().ok_or_else(|| {
        format!(
            "{} has no \"pid\" directive, so there is no pid file to find the running postern by",
            config.file.display()
        )
    })?;
    pid::signal_running(path, signal)
}

/// nginx's start-up line about RLIMIT_NOFILE, from /proc (no libc needed).
fn open_files_limit() -> String {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let fields: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .map(|l| l.split_whitespace().skip(3).take(2).collect())
        .unwrap_or_default();
    match fields.as_slice() {
        [soft, hard] => format!("getrlimit(RLIMIT_NOFILE): {soft}:{hard}"),
        _ => "getrlimit(RLIMIT_NOFILE): unknown".to_string(),
    }
}

/// The main thread's end of one core.
struct CoreHandle {
    /// Orders, a byte each (`core::STOP_GRACEFULLY`, `core::RELOAD`).
    control: UnixStream,
    /// Reload plans; the `RELOAD` byte tells the core to look.
    plans: mpsc::Sender<core::ReloadPlan>,
}

/// The main thread after start-up: signals in, orders to the cores.
struct Supervisor<'a> {
    /// The configuration the cores serve now.
    current: Config,
    reload: Reload<'a>,
    handles: Vec<CoreHandle>,
    /// Unix sockets bound, removed at exit.
    unix_paths: Vec<PathBuf>,
    /// Duplicates of every listening socket, for a new binary.
    listening: upgrade::Listening,
    pid_file: Option<pid::PidFile>,
    events: mpsc::Sender<Event>,
    /// The pid of the new binary started by SIGUSR2 while it runs.
    successor: Option<u32>,
}

impl Supervisor<'_> {
    fn supervise(&mut self, inbox: &mpsc::Receiver<Event>) -> Result<(), String> {
        let cores = self.handles.len();
        let mut graceful = false;
        let mut ended = 0;
        loop {
            match inbox.recv() {
                Ok(Event::Signal(signal @ (SIGTERM | SIGINT))) => {
                    crate::notice!("signal {signal} received, exiting");
                    return Ok(());
                }
                Ok(Event::Signal(SIGQUIT)) if !graceful => {
                    crate::notice!("signal {SIGQUIT} received, shutting down gracefully");
                    graceful = true;
                    let order = match self.successor {
                        Some(_) => core::STOP_HANDED_OVER,
                        None => core::STOP_GRACEFULLY,
                    };
                    for handle in &mut self.handles {
                        // A core that is gone cannot be told; it has stopped anyway.
                        let _ = handle.control.write_all(&[order]);
                    }
                }
                Ok(Event::Signal(SIGUSR1)) => {
                    crate::notice!("signal {SIGUSR1} received, reopening logs");
                    if let Err(e) = crate::logging::reopen() {
                        log::error!("{e}");
                    }
                }
                Ok(Event::Signal(SIGHUP)) if !graceful => {
                    crate::notice!("signal {SIGHUP} received, reconfiguring");
                    match self.reconfigure() {
                        Ok(done) => crate::notice!("{done}"),
                        Err(e) => log::error!("reload failed, the running configuration stays: {e}"),
                    }
                }
                Ok(Event::Signal(SIGUSR2)) if !graceful => match self.successor {
                    Some(pid) => crate::notice!("signal {SIGUSR2} received, but the new binary (pid {pid}) runs already"),
                    None => match self.start_successor() {
                        Ok(pid) => crate::notice!(
                            "signal {SIGUSR2} received, started the new binary, pid {pid}; SIGQUIT pid {} to let this one drain",
                            std::process::id()
                        ),
                        Err(e) => log::error!("binary upgrade failed, this one keeps serving: {e}"),
                    },
                },
                Ok(Event::SuccessorEnded(pid, status)) => {
                    self.successor = None;
                    if !graceful {
                        // As nginx: the old binary takes its pid file back.
                        if let Some(file) = &mut self.pid_file {
                            if let Err(e) = file.restore_name() {
                                log::error!("{e}");
                            }
                        }
                        service::main_again();
                        log::error!("the new binary (pid {pid}) exited ({status}); this one keeps serving");
                    }
                }
                Ok(Event::Signal(_)) => {}
                Ok(Event::CoreEnded(index, why)) => {
                    if !graceful {
                        return Err(format!("core {index} {why}"));
                    }
                    ended += 1;
                    if ended == cores {
                        crate::notice!("graceful shutdown done, exiting");
                        return Ok(());
                    }
                }
                Err(_) => return Err("all cores ended".to_string()),
            }
        }
    }

    /// SIGUSR2: the pid file moves to `<pid>.oldbin` and the binary now at
    /// our path starts with our arguments and our listening sockets.
    fn start_successor(&mut self) -> Result<u32, String> {
        if let Some(file) = &mut self.pid_file {
            file.rename_to_oldbin()?;
        }
        let child = match self.listening.spawn_new_binary() {
            Ok(child) => child,
            Err(e) => {
                if let Some(file) = &mut self.pid_file {
                    let _ = file.restore_name();
                }
                return Err(e);
            }
        };
        let pid = child.id();
        self.successor = Some(pid);
        let events = self.events.clone();
        std::thread::Builder::new()
            .name("postern-successor".into())
            .spawn(move || {
                let mut child = child;
                let status = child.wait().map_or_else(|e| e.to_string(), |s| s.to_string());
                let _ = events.send(Event::SuccessorEnded(pid, status));
            })
            .map_err(|e| format!("starting the thread that waits for pid {pid} failed ({e})"))?;
        Ok(pid)
    }

    /// Reads the configuration again and, if it is valid and every new
    /// address binds, hands each core its new listener set. Addresses that
    /// stay keep their sockets (closing a SO_REUSEPORT socket resets the
    /// connections queued on it), so no connection is refused or dropped.
    fn reconfigure(&mut self) -> Result<String, String> {
        let new = (self.reload)()?;
        if new.servers.is_empty() {
            return Err(format!("no mail servers are configured in {}", new.file.display()));
        }
        for warning in &new.warnings {
            log::warn!("{warning}");
        }
        crate::logging::open_server_logs(&new)?;
        for changed in main_changes(&self.current.main, &new.main) {
            log::warn!("reload: \"{changed}\" changed; it takes effect at the next start");
        }
        let old = listens(&self.current);
        let mut plans: Vec<core::ReloadPlan> = self.handles.iter().map(|_| Vec::new()).collect();
        let mut bound_unix = Vec::new();
        let built = build_plans(&new, &old, &mut plans, &mut bound_unix);
        if let Err(e) = built {
            for path in &bound_unix {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
        let fresh = listens(&new);
        let closed: Vec<&String> = old.keys().filter(|name| !fresh.contains_key(*name)).collect();
        let added = fresh.keys().filter(|name| !old.contains_key(*name)).count();
        for name in &closed {
            self.listening.remove(name);
        }
        for plan in &plans {
            for listener in plan {
                if let Some(fd) = &listener.fd {
                    self.listening.add(&listener.name, fd)?;
                }
            }
        }
        for (handle, plan) in self.handles.iter_mut().zip(plans) {
            // A core that is gone has stopped serving anyway.
            if handle.plans.send(plan).is_ok() {
                let _ = handle.control.write_all(&[core::RELOAD]);
            }
        }
        for name in &closed {
            if let Some(ListenAddr::Unix(path)) = old.get(*name).map(|l| &l.addr) {
                let _ = std::fs::remove_file(path);
                self.unix_paths.retain(|p| p != path);
            }
        }
        self.unix_paths.extend(bound_unix);
        let summary = format!(
            "reconfigured from {}: {} listener(s), {added} new, {} closed",
            new.file.display(),
            fresh.len(),
            closed.len()
        );
        self.current = new;
        Ok(summary)
    }
}

/// Each server block's TLS, built where a bad certificate stops the start
/// or the reload with the directive's file:line.
fn tls_setups(config: &Config) -> Result<Vec<TlsSetup>, String> {
    let setups = config
        .servers
        .iter()
        .map(TlsSetup::build)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    Ok(setups)
}

/// What one listener's sessions are served with.
fn setup(server: &ServerConfig, tls: &TlsSetup, listen: &crate::config::Listen) -> ServerSetup {
    ServerSetup {
        server: server.clone(),
        tls: tls.clone(),
        implicit_tls: listen.params.ssl,
        proxy_protocol: listen.params.proxy_protocol,
    }
}

/// Every listen of a configuration by the name cores know it by.
fn listens(config: &Config) -> BTreeMap<String, &crate::config::Listen> {
    let mut out = BTreeMap::new();
    for server in &config.servers {
        for listen in &server.listen {
            out.insert(listen_name(&listen.addr), listen);
        }
    }
    out
}

fn listen_name(addr: &ListenAddr) -> String {
    match addr {
        ListenAddr::Tcp(addr) => addr.to_string(),
        ListenAddr::Unix(path) => format!("unix:{}", path.display()),
    }
}

/// Each core's listener set for `new`: names served now are kept (their
/// parameters cannot change without a restart), new ones are bound here.
fn build_plans(
    new: &Config,
    old: &BTreeMap<String, &crate::config::Listen>,
    plans: &mut [core::ReloadPlan],
    bound_unix: &mut Vec<PathBuf>,
) -> Result<(), String> {
    // A certificate that does not load fails the reload before any socket
    // is bound; the running configuration stays.
    let tls = tls_setups(new)?;
    for (server, tls) in new.servers.iter().zip(&tls) {
        for listen in &server.listen {
            let name = listen_name(&listen.addr);
            if let Some(before) = old.get(&name) {
                // `ssl` and `proxy_protocol` apply at once: they only
                // change what sessions do.
                let socket_params = |p: &ListenParams| ListenParams {
                    ssl: false,
                    proxy_protocol: false,
                    ..p.clone()
                };
                if socket_params(&before.params) != socket_params(&listen.params) {
                    log::warn!(
                        "reload: the parameters of \"listen {name}\" changed; they take effect at the next start"
                    );
                }
                for plan in plans.iter_mut() {
                    plan.push(core::ReloadListener {
                        name: name.clone(),
                        server: setup(server, tls, listen),
                        fd: None,
                    });
                }
                continue;
            }
            let shared = match &listen.addr {
                ListenAddr::Unix(path) => {
                    let fd = listener::bind_unix(path, &listen.params)?;
                    bound_unix.push(path.clone());
                    Some(fd)
                }
                ListenAddr::Tcp(_) => None,
            };
            for plan in plans.iter_mut() {
                let fd = match (&listen.addr, &shared) {
                    (ListenAddr::Tcp(addr), _) => listener::bind_tcp(*addr, &listen.params)?,
                    (_, Some(fd)) => fd.try_clone().map_err(|e| format!("dup() of {name} failed ({e})"))?,
                    (ListenAddr::Unix(_), None) => unreachable!("a unix listen is bound above"),
                };
                plan.push(core::ReloadListener {
                    name: name.clone(),
                    server: setup(server, tls, listen),
                    fd: Some(fd),
                });
            }
        }
    }
    Ok(())
}

/// Main-context directives whose change a reload cannot apply.
fn main_changes(old: &MainConfig, new: &MainConfig) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if old.worker_processes != new.worker_processes {
        changed.push("worker_processes");
    }
    if old.worker_connections != new.worker_connections {
        changed.push("worker_connections");
    }
    if old.error_log != new.error_log {
        changed.push("error_log");
    }
    if old.pid != new.pid {
        changed.push("pid");
    }
    if old.worker_rlimit_nofile != new.worker_rlimit_nofile {
        changed.push("worker_rlimit_nofile");
    }
    if old.worker_shutdown_timeout != new.worker_shutdown_timeout {
        changed.push("worker_shutdown_timeout");
    }
    if old.user != new.user {
        changed.push("user");
    }
    if old.metrics_listen != new.metrics_listen {
        changed.push("metrics_listen");
    }
    changed
}
