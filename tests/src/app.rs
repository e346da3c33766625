//! The real application, built with `Application::build` like `main` does, on
//! 127.0.0.1 port 0 with a database of its own.

use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use mrmat_api::Application;
use mrmat_api::settings::{OidcSettings, Settings};
use reqwest::{Method, RequestBuilder, Response};

use crate::db::{Backend, TestDb};
use crate::idp::eventually;

/// How long `Application::build` may take (it connects to the database and migrates).
const BUILD_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a dropped server may take to stop. Its requests end within their own bounds
/// (the database and provider timeouts), well inside this.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a stopping server is looked at.
const STOP_POLL: Duration = Duration::from_millis(2);

/// A running server for one test. Stopped when dropped.
#[derive(Debug)]
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// The port.
    pub port: u16,
    /// A client without redirects.
    pub http: reqwest::Client,
    /// Its database.
    pub db: TestDb,
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Settings for a test server on `db`: loopback, port 0, one worker.
pub fn test_settings(db: &TestDb, oidc: Option<OidcSettings>) -> Settings {
    Settings {
        host: "127.0.0.1".to_owned(),
        port: 0,
        instance_path: db.dir.path().to_path_buf(),
        oidc: oidc.into_iter().collect(),
        ..Settings::with_database(db.url.clone())
    }
}

impl TestApp {
    /// A server without authentication.
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    /// A server that checks tokens with `oidc`.
    pub async fn spawn_with_auth(backend: Backend, oidc: OidcSettings) -> Self {
        Self::spawn_with(backend, move |settings| settings.oidc = vec![oidc]).await
    }

    /// A server with adjusted settings.
    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> Self {
        let db = TestDb::new(backend);
        let mut settings = test_settings(&db, None);
        adjust(&mut settings);
        // The server runs on a thread and runtime of its own, as in production, so the
        // test's runtime (often single-threaded) never has to drive it, even when stopping.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match Application::build(settings).await {
                    Ok(app) => {
                        let _ = ready_tx.send(Ok((app.port(), app.handle())));
                        let _ = app.run_until_stopped().await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                    }
                }
            });
        });
        let (port, handle) =
            tokio::task::spawn_blocking(move || ready_rx.recv_timeout(BUILD_TIMEOUT))
                .await
                .expect("join")
                .unwrap_or_else(|e| {
                    panic!("the application was not built within {BUILD_TIMEOUT:?}: {e}")
                })
                .unwrap_or_else(|e| panic!("build the application: {e}"));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client");
        let test_app = Self {
            address: format!("http://127.0.0.1:{port}"),
            port,
            http,
            db,
            handle,
            thread: Some(thread),
        };
        let probe = test_app.url("/healthz/");
        let client = test_app.http.clone();
        eventually(Duration::from_secs(10), || {
            let probe = probe.clone();
            let client = client.clone();
            async move {
                client
                    .get(probe)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await;
        test_app
    }

    /// A URL on the server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A request, with a bearer token when given.
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self.http.request(method, self.url(path));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token)
            .send()
            .await
            .expect("GET")
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(
        &self,
        path: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> Response {
        self.request(Method::POST, path, token)
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    /// `PUT path` with a JSON body.
    pub async fn put_json(
        &self,
        path: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> Response {
        self.request(Method::PUT, path, token)
            .json(body)
            .send()
            .await
            .expect("PUT")
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::DELETE, path, token)
            .send()
            .await
            .expect("DELETE")
    }

    /// Creates a resource and returns its JSON; panics unless 201.
    pub async fn create_resource(&self, token: &str, name: &str) -> serde_json::Value {
        let response = self
            .post_json(
                "/api/resource/v1/",
                Some(token),
                &serde_json::json!({ "name": name }),
            )
            .await;
        let status = response.status();
        if status != 201 {
            let challenge = response
                .headers()
                .get("www-authenticate")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            let body = response.text().await.unwrap_or_default();
            panic!("create {name:?}: {status}, WWW-Authenticate {challenge:?}, body {body}");
        }
        response.json().await.expect("resource JSON")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sends the stop command at once; the server's own thread carries it out.
        drop(self.handle.stop(false));
        let Some(thread) = self.thread.take() else {
            return;
        };
        // A join has no timeout of its own.
        let deadline = Instant::now() + STOP_TIMEOUT;
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(STOP_POLL);
        }
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            // No panic here: drop may run while a test unwinds. The test process ends
            // soon and takes the thread with it.
            eprintln!("the test server did not stop within {STOP_TIMEOUT:?}; left behind");
        }
    }
}
