//! Building and running the application: the function `main` and the tests both call.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use tokio::signal::unix::{SignalKind, signal};

use crate::api;
use crate::auth::{Issuers, Recent};
use crate::cors::Cors;
use crate::db::{self, Db, DbError, migrate};
use crate::drain::Drain;
use crate::error::ApiError;
use crate::forwarded::TrustedProxies;
use crate::metrics::{Metrics, WorkerMetrics};
use crate::middleware::{RequestContext, WorkerContext};
use crate::rate_limit::SharedLimit;
use crate::settings::{ConfigError, OidcSettings, Settings, UnixSocket};
use crate::state::AppState;
use crate::telemetry::Telemetry;

/// Why the server could not start. Each is a configuration problem the operator fixes.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A bad option.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database cannot be used.
    #[error("{0}")]
    Database(String),
    /// The address cannot be bound.
    #[error("--host/--port: cannot listen on {address}: {reason}")]
    Bind {
        /// host:port.
        address: String,
        /// Why.
        reason: String,
    },
    /// Anything else.
    #[error("cannot start: {0}")]
    Other(String),
}

impl From<DbError> for StartupError {
    fn from(error: DbError) -> Self {
        Self::Database(error.to_string())
    }
}

impl From<ApiError> for StartupError {
    fn from(error: ApiError) -> Self {
        Self::Other(error.to_string())
    }
}

/// Applies the pending migrations and closes the connection; the versions applied. For
/// deployments that migrate in a step of their own (`mrmat-api migrate`).
pub fn migrate(settings: &Settings) -> Result<Vec<String>, StartupError> {
    let mut conn = db::establish(&settings.database, settings.db_timeout)?;
    Ok(migrate::run_pending(&mut conn)?)
}

/// The OpenAPI document, pretty-printed (`mrmat-api openapi`).
pub fn openapi_json() -> Result<String, StartupError> {
    serde_json::to_string_pretty(&api::openapi()).map_err(|e| StartupError::Other(e.to_string()))
}

/// Opens the database and brings its schema up to date (or checks it is, with
/// `--no-migrate`), then opens the pool. Blocking: call it before serving.
fn prepare_database(settings: &Settings, metrics: Arc<Metrics>) -> Result<Db, StartupError> {
    // The instance directory holds the database: the server's user's only, whatever the
    // umask (created 0700, an existing one narrowed).
    db::connection::create_private_dir(&settings.instance_path).map_err(|e| {
        ConfigError::invalid(
            "--instance-path",
            format!("cannot create {}: {e}", settings.instance_path.display()),
        )
    })?;
    db::connection::tighten_dir(&settings.instance_path);
    let mut conn = db::establish(&settings.database, settings.db_timeout)?;
    if settings.migrate {
        let applied = migrate::run_pending(&mut conn)?;
        if !applied.is_empty() {
            log::info!("applied migrations: {}", applied.join(", "));
        }
    } else {
        migrate::ensure_current(&mut conn)?;
    }
    drop(conn);
    Ok(Db::new(
        &settings.database,
        settings.db_pool_size,
        u32::try_from(settings.workers).unwrap_or(u32::MAX),
        settings.db_timeout,
        metrics,
    )?)
}

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listening {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A unix socket.
    Unix(PathBuf),
}

impl std::fmt::Display for Listening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "http://{addr}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// How long the requests in flight get to finish once the server stops accepting (after
/// the drain delay); then their connections are dropped. So a SIGTERM ends the process
/// within `--shutdown-delay` + this.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound, ready-to-run server.
pub struct Application {
    listening: Vec<Listening>,
    metrics_listening: Vec<SocketAddr>,
    server: Server,
    /// The metrics listener of `--metrics-addr`, stopped with the server.
    metrics_server: Option<Server>,
    /// What the drain tells readiness and the connections.
    state: web::Data<AppState>,
    /// `--shutdown-delay`.
    shutdown_delay: Duration,
    /// The trace exporter, flushed at exit; `None` without an OTLP endpoint.
    telemetry: Option<Telemetry>,
    /// The TCP listeners again (the same sockets), for [`shut_the_door`].
    doors: Vec<TcpListener>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("listening", &self.listening)
            .field("metrics_listening", &self.metrics_listening)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Opens the database, binds the listeners and builds the server. Binding port 0 picks
    /// a free port; [`Application::port`] tells which.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        // First: the database and the provider are traced from their first call.
        let telemetry = Telemetry::from_env()?;
        let metrics = Arc::new(Metrics::new());
        let db = prepare_database(&settings, metrics.clone())?;
        settings.oidc.iter().for_each(warn_about);
        if settings.oidc.iter().any(|oidc| !oidc.checks_jwts()) {
            log::warn!(
                "no --public-url or --oidc-audience: introspected tokens meant for any audience are accepted; set --public-url to accept only tokens issued for this server"
            );
        }
        let auth = Issuers::new(
            &settings.oidc,
            &metrics,
            settings.public_url.clone(),
            settings.require_dpop,
        )?
        .map(web::Data::new);
        if auth.is_none() {
            log::warn!("Running without any authentication/authorisation");
        }
        let mut proxies = TrustedProxies::new(settings.trusted_proxies.clone())
            .reading(settings.forwarded_headers);
        if settings.unix_socket.is_some() {
            proxies = proxies.and_unix_peers();
        }
        let state = web::Data::new(AppState {
            db,
            auth,
            public_url: settings.public_url.clone(),
            proxies: web::Data::new(proxies),
            readiness: AppState::readiness_cache(),
            drain: web::Data::new(Drain::default()),
        });
        let metrics = web::Data::from(metrics);
        let cors_origins = settings.cors_origins.clone();
        let limiter = settings
            .rate_limit
            .map(|limit| Arc::new(SharedLimit::new(limit)));
        let public_metrics = settings.metrics_addr.is_none();

        let app_state = state.clone();
        let app_metrics = metrics.clone();
        let server = HttpServer::new(move || {
            let state = app_state.clone();
            let mut app = App::new()
                .app_data(state.clone())
                .app_data(state.proxies.clone())
                .app_data(app_metrics.clone());
            // The bearer-token extractor looks for the authenticator on its own, and for
            // this worker's recent verdicts (one set per worker, never shared).
            if let Some(auth) = &state.auth {
                app = app.app_data(auth.clone()).app_data(Recent::default());
            }
            // Each worker its own handles on what every request clones: an `Arc` both
            // workers count references on is a cache line they take from each other.
            app = app.app_data(WorkerContext::new(
                WorkerMetrics::new(&app_metrics),
                state.proxies.clone(),
                state.drain.clone(),
                cors_origins.is_some() || limiter.is_some(),
            ));
            if let Some(origins) = &cors_origins {
                app = app.app_data(web::Data::new(Cors::new(origins.clone())));
            }
            if let Some(limiter) = &limiter {
                app = app.app_data(web::Data::new(limiter.for_worker()));
            }
            app.app_data(
                web::PathConfig::default()
                    .error_handler(|e, _| ApiError::NotFound(format!("no such path: {e}")).into()),
            )
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                ApiError::BadRequest(format!("bad query string: {e}")).into()
            }))
            .configure(api::configure)
            .configure(|cfg| {
                if public_metrics {
                    api::metrics::configure(cfg);
                }
            })
            .default_service(web::to(api::not_found))
            // The request context: the request id, traces, metrics, the access line, the
            // limit, CORS and the drain's `Connection: close`.
            .wrap(RequestContext)
        })
        .workers(settings.workers)
        // The signals are ours: the drain comes first (see `run_until_stopped`).
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_TIMEOUT.as_secs());

        let bound = match &settings.unix_socket {
            Some(socket) => bind_unix(socket)?,
            None => Bound::Tcp(bind(&settings.host, settings.port)?),
        };
        let listening = bound.listening();
        let address = match &settings.unix_socket {
            Some(socket) => format!("unix:{}", socket.path.display()),
            None => format!("{}:{}", settings.host, settings.port),
        };
        let fail = |e: std::io::Error| StartupError::Bind {
            address: address.clone(),
            reason: e.to_string(),
        };
        // Second handles on the TCP listeners, to shut the door at the end of the drain.
        let mut doors = Vec::new();
        let server = match bound {
            Bound::Tcp(listeners) => {
                let mut server = server;
                for listener in listeners {
                    doors.push(listener.try_clone().map_err(fail)?);
                    server = server.listen(listener).map_err(fail)?;
                }
                server
            }
            Bound::Unix(listener, _) => server.listen_uds(listener).map_err(fail)?,
        };

        let (metrics_server, metrics_listening) = match &settings.metrics_addr {
            None => (None, Vec::new()),
            Some((host, port)) => {
                let listeners = bind(host, *port).map_err(|e| match e {
                    StartupError::Bind { address, reason } => StartupError::Bind {
                        address: format!("--metrics-addr {address}"),
                        reason,
                    },
                    other => other,
                })?;
                let addrs: Vec<SocketAddr> = listeners
                    .iter()
                    .filter_map(|l| l.local_addr().ok())
                    .collect();
                let metrics_state = state.clone();
                let mut metrics_server = HttpServer::new(move || {
                    App::new()
                        .app_data(metrics_state.clone())
                        .app_data(metrics.clone())
                        .configure(api::metrics::configure)
                        .default_service(web::to(api::not_found))
                })
                .workers(1)
                // The main server owns the signals and stops this one with it.
                .disable_signals()
                .shutdown_timeout(1);
                for listener in listeners {
                    metrics_server =
                        metrics_server
                            .listen(listener)
                            .map_err(|e| StartupError::Bind {
                                address: format!("--metrics-addr {host}:{port}"),
                                reason: e.to_string(),
                            })?;
                }
                (Some(metrics_server.run()), addrs)
            }
        };

        Ok(Self {
            listening,
            metrics_listening,
            server: server.run(),
            metrics_server,
            state,
            shutdown_delay: settings.shutdown_delay,
            telemetry,
            doors,
        })
    }

    /// The bound TCP port (0 on a unix socket).
    pub fn port(&self) -> u16 {
        self.listening
            .iter()
            .find_map(|l| match l {
                Listening::Tcp(addr) => Some(addr.port()),
                Listening::Unix(_) => None,
            })
            .unwrap_or(0)
    }

    /// Where the server listens.
    pub fn listening(&self) -> &[Listening] {
        &self.listening
    }

    /// Where `/metrics` is served on its own, with `--metrics-addr`.
    pub fn metrics_listening(&self) -> &[SocketAddr] {
        &self.metrics_listening
    }

    /// A handle that stops the server.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT or a stop through [`Application::handle`].
    ///
    /// The first SIGTERM or SIGINT starts the drain: readiness answers 503 at once, every
    /// answer carries `Connection: close` (so kept-alive clients and proxies reconnect,
    /// elsewhere), and the listeners keep accepting for `--shutdown-delay`, for a balancer
    /// polling readiness to stop sending. Then the listeners close (a connection is refused
    /// from then on), the requests in flight get [`SHUTDOWN_TIMEOUT`] to finish, and this
    /// returns. A second signal during the drain ends the drain there (the requests in
    /// flight still finish); one after it drops the requests still in flight.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let mut server = actix_web::rt::spawn(self.server);
        let metrics = self
            .metrics_server
            .map(|server| (server.handle(), actix_web::rt::spawn(server)));
        let signals = actix_web::rt::spawn(stop_on_signals(
            handle,
            self.state.clone(),
            self.shutdown_delay,
            self.doors,
        ));
        let result = (&mut server)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        signals.abort();
        if let Some((handle, task)) = metrics {
            handle.stop(true).await;
            let _ = task.await;
        }
        if let Some(telemetry) = self.telemetry {
            // Waits for the exporter's thread: off the async worker.
            let _ = actix_web::rt::task::spawn_blocking(move || telemetry.shutdown()).await;
        }
        result
    }
}

/// Waits for SIGTERM or SIGINT, drains and stops the server through `handle`.
async fn stop_on_signals(
    handle: ServerHandle,
    state: web::Data<AppState>,
    delay: Duration,
    doors: Vec<TcpListener>,
) {
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(e), _) | (_, Err(e)) => {
            // Without handlers the signals keep their default action: the process ends at
            // once. Serving on is better than not serving.
            log::error!("cannot handle SIGTERM/SIGINT ({e}): they will end the server abruptly");
            return;
        }
    };
    let mut next_signal = async move || {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    };
    let name = next_signal().await;
    let started = Instant::now();
    state.start_draining();
    log::info!(
        "{name}: shutting down; readiness answers 503, accepting for {delay:?} more, then \
         finishing the requests in flight (at most {SHUTDOWN_TIMEOUT:?})"
    );
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        name = next_signal() => log::info!("{name} again: ending the drain early"),
    }
    log::info!("no longer accepting connections; finishing the requests in flight");
    shut_the_door(&doors).await;
    let stopped = handle.stop(true);
    // The server closes its handles of the listeners; with these gone too, the sockets
    // close, and a connection attempt is refused, which a proxy retries elsewhere.
    drop(doors);
    tokio::select! {
        () = stopped => log::info!("stopped {:?} after the signal", started.elapsed()),
        name = next_signal() => {
            log::warn!("{name} again: dropping the requests still in flight");
            handle.stop(false).await;
        }
    }
}

/// How long the accept loop gets to take the connections already queued once no new
/// ones can complete. It takes them as they come; this is slack for a loaded machine.
const ACCEPT_QUEUE_GRACE: Duration = Duration::from_millis(200);

/// Lets no new connection in, then waits for the server to accept the ones already in the
/// kernel's queue. Closing a listener resets the connections still queued on it, and a
/// proxy may have sent a request on one already (the handshake completes in the kernel):
/// nginx does not retry a POST it sent, so that request would fail. With a filter that
/// drops every packet to the listener, a new handshake cannot complete (the caller's SYN
/// is retransmitted after a second, and finds the port closed or the next process), and
/// the queue empties into the server, which answers what it accepted.
async fn shut_the_door(doors: &[TcpListener]) {
    // One classic BPF instruction, `ret #0`: keep no byte of any packet.
    const DROP_ALL: [socket2::SockFilter; 1] = [socket2::SockFilter::new(0x06, 0, 0, 0)];
    if doors.is_empty() {
        return;
    }
    for door in doors {
        if let Err(e) = socket2::SockRef::from(door).attach_filter(&DROP_ALL) {
            log::warn!("cannot stop new connections before closing the listener: {e}");
        }
    }
    tokio::time::sleep(ACCEPT_QUEUE_GRACE).await;
}

/// The listening sockets, bound before the server is built so that a bad address ends the
/// start with a clear message.
enum Bound {
    Tcp(Vec<TcpListener>),
    Unix(std::os::unix::net::UnixListener, PathBuf),
}

impl Bound {
    fn listening(&self) -> Vec<Listening> {
        match self {
            Self::Tcp(listeners) => listeners
                .iter()
                .filter_map(|l| l.local_addr().ok())
                .map(Listening::Tcp)
                .collect(),
            Self::Unix(_, path) => vec![Listening::Unix(path.clone())],
        }
    }
}

/// Binds the unix socket with its mode, which it has from the moment anyone can reach it.
/// Bound at its path and chmod-ed afterwards, it would have the umask's mode (0777 under
/// umask 000) for a moment, and any local user connecting then would be a trusted proxy.
/// So it is bound in a private directory (0700: nobody else may even look up a path in
/// it) beside its path, given its mode there, and renamed into place, which is atomic and
/// stays on one file system. (A umask around `bind` would be process-wide and race every
/// other thread's files; fchmod before bind is Linux's alone, and narrowed by the umask.)
fn bind_unix(socket: &UnixSocket) -> Result<Bound, StartupError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let fail = |reason: String| StartupError::Bind {
        address: format!("unix:{}", socket.path.display()),
        reason,
    };
    remove_stale_socket(&socket.path).map_err(fail)?;
    let parent = socket
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let private = parent.join(format!(".mrmat-api-{}", std::process::id()));
    let create = || std::fs::DirBuilder::new().mode(0o700).create(&private);
    if let Err(e) = create() {
        // Left by a process of ours with the same id that died mid-start: ours to remove.
        // (Someone else's in a shared directory is not removable by us, and stops us.)
        if e.kind() != std::io::ErrorKind::AlreadyExists
            || std::fs::remove_dir_all(&private).is_err()
        {
            return Err(fail(format!("cannot create {}: {e}", private.display())));
        }
        create().map_err(|e| fail(format!("cannot create {}: {e}", private.display())))?;
    }
    let staged = private.join("s");
    let bound = std::os::unix::net::UnixListener::bind(&staged)
        .map_err(|e| format!("{e} (bound first as {})", staged.display()))
        .and_then(|listener| {
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(socket.mode))
                .map_err(|e| format!("cannot set its mode: {e}"))?;
            std::fs::rename(&staged, &socket.path)
                .map_err(|e| format!("cannot move it into place: {e}"))?;
            Ok(listener)
        });
    // Empty after the rename; after a failure it may still hold the staged socket.
    if let Err(e) = std::fs::remove_dir_all(&private) {
        log::warn!("cannot remove {}: {e}", private.display());
    }
    Ok(Bound::Unix(bound.map_err(fail)?, socket.path.clone()))
}

/// A socket file left by a server that is gone is removed; one in use, or a file that is
/// not a socket, is not.
fn remove_stale_socket(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !metadata.file_type().is_socket() {
        return Err("the path exists and is not a socket".to_owned());
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err("another process is listening there".to_owned()),
        Err(_) => {
            std::fs::remove_file(path).map_err(|e| format!("cannot remove the stale socket: {e}"))
        }
    }
}

/// Warnings an operator must see at every start.
fn warn_about(oidc: &OidcSettings) {
    if oidc.allow_insecure_http {
        log::warn!(
            "--oidc-allow-insecure-http is set: tokens and the client secret may cross the network in clear to {}; never do this in production",
            oidc.issuer
        );
    }
    if oidc.has_placeholder_secret() {
        log::warn!(
            "--oidc-client-secret is a published placeholder: anyone can introspect as this server; set the secret the provider generated"
        );
    }
}

/// Binds every address `host` resolves to, all on one port: `localhost` is both
/// 127.0.0.1 and ::1, and with port 0 the second must reuse the port the first got.
fn bind(host: &str, port: u16) -> Result<Vec<TcpListener>, StartupError> {
    let address = format!("{host}:{port}");
    let fail = |reason: String| StartupError::Bind {
        address: address.clone(),
        reason,
    };
    let resolved: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| fail(format!("cannot resolve the host: {e}")))?
        .collect();
    let mut listeners: Vec<TcpListener> = Vec::new();
    let mut last_error = None;
    for mut addr in resolved {
        if let Some(first) = listeners.first().and_then(|l| l.local_addr().ok()) {
            addr.set_port(first.port());
        }
        match TcpListener::bind(addr) {
            Ok(listener) => listeners.push(listener),
            Err(e) => {
                log::debug!("cannot bind {addr}: {e}");
                last_error = Some(e);
            }
        }
    }
    if listeners.is_empty() {
        return Err(fail(last_error.map_or_else(
            || "the host resolves to no address".to_owned(),
            |e| e.to_string(),
        )));
    }
    Ok(listeners)
}
