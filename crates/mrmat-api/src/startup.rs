//! Building and running the application: the function `main` and the tests both call.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{NormalizePath, TrailingSlash, from_fn};
use actix_web::{App, HttpServer, web};

use crate::api;
use crate::auth::Authenticator;
use crate::db::{self, Db, DbError, migrate};
use crate::error::ApiError;
use crate::forwarded::TrustedProxies;
use crate::middleware::request_context;
use crate::settings::{ConfigError, OidcSettings, Settings};
use crate::state::AppState;

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
fn prepare_database(settings: &Settings) -> Result<Db, StartupError> {
    std::fs::create_dir_all(&settings.instance_path).map_err(|e| {
        ConfigError::invalid(
            "--instance-path",
            format!("cannot create {}: {e}", settings.instance_path.display()),
        )
    })?;
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
    let pool_size = u32::try_from(settings.workers.saturating_mul(2))
        .unwrap_or(u32::MAX)
        .max(8);
    Ok(Db::new(&settings.database, pool_size, settings.db_timeout))
}

/// A bound, ready-to-run server.
pub struct Application {
    addrs: Vec<SocketAddr>,
    server: Server,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Opens the database, binds the listeners and builds the server. Binding port 0 picks
    /// a free port; [`Application::port`] tells which.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let db = prepare_database(&settings)?;
        if let Some(oidc) = &settings.oidc {
            warn_about(oidc);
        }
        let auth = settings
            .oidc
            .clone()
            .map(Authenticator::new)
            .transpose()?
            .map(web::Data::new);
        if auth.is_none() {
            log::warn!("Running without any authentication/authorisation");
        }
        let proxies = web::Data::new(TrustedProxies::new(settings.trusted_proxies.clone()));
        let state = web::Data::new(AppState {
            db,
            auth,
            proxies,
            readiness: AppState::readiness_cache(),
        });
        let listeners = bind(&settings.host, settings.port)?;
        let addrs = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect::<Vec<_>>();

        let mut server = HttpServer::new(move || {
            let mut app = App::new()
                .app_data(state.clone())
                .app_data(state.proxies.clone());
            // The bearer-token extractor looks for the authenticator on its own.
            if let Some(auth) = &state.auth {
                app = app.app_data(auth.clone());
            }
            app.app_data(
                web::PathConfig::default()
                    .error_handler(|e, _| ApiError::NotFound(format!("no such path: {e}")).into()),
            )
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                ApiError::BadRequest(format!("bad query string: {e}")).into()
            }))
            .configure(api::configure)
            .default_service(web::to(api::not_found))
            // Trailing slashes are trimmed before routing, so both forms are served
            // without a redirect.
            .wrap(NormalizePath::new(TrailingSlash::Trim))
            .wrap(from_fn(request_context))
        })
        .workers(settings.workers)
        .shutdown_timeout(10);
        for listener in listeners {
            server = server.listen(listener).map_err(|e| StartupError::Bind {
                address: format!("{}:{}", settings.host, settings.port),
                reason: e.to_string(),
            })?;
        }
        Ok(Self {
            addrs,
            server: server.run(),
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addrs.first().map_or(0, SocketAddr::port)
    }

    /// Every bound address.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// A handle that stops the server.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT (graceful: in-flight requests finish) or a stop through
    /// [`Application::handle`].
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
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
