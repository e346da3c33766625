//! A real nginx (the Debian package) as a child process for proxy tests: its own prefix
//! in a temporary directory (pid file, logs, every `*_temp_path`), listening on a loopback
//! port the harness picks, with a site configuration the test writes, usually around the
//! snippets shipped in `var/nginx/snippets/`.

use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use tokio::time::Instant;

use crate::process::{Echo, Running, Streams, TAIL_BYTES, run_with_deadline};
use crate::tools;

/// Attempts at a free port: another process may take the one picked before nginx binds.
const PORT_ATTEMPTS: usize = 5;

/// How long nginx may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How long nginx gets to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether nginx terminates TLS on its listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTPS with a throwaway self-signed certificate for 127.0.0.1.
    Https,
}

/// What a site configuration needs to know: where nginx listens and its files.
#[derive(Debug, Clone)]
pub struct Site {
    /// The `listen` parameters: `127.0.0.1:PORT` (and `ssl` with HTTPS).
    pub listen: String,
    /// The port.
    pub port: u16,
    /// `ssl_certificate` and `ssl_certificate_key` lines, empty without HTTPS.
    pub tls: String,
    /// The access log file (the test reads it with [`Nginx::access_log`]).
    pub access_log: PathBuf,
}

/// A running nginx. Stopped when dropped: SIGTERM first, since a master killed with
/// SIGKILL would leave its workers running.
#[derive(Debug)]
pub struct Nginx {
    process: Running,
    dir: TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its scheme.
    pub scheme: Scheme,
}

/// The deployment material's copy of a file under `var/nginx/`.
pub fn shipped(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("var")
        .join("nginx")
        .join(relative)
}

/// An `include` line for a file shipped under `var/nginx/`.
pub fn include_shipped(relative: &str) -> String {
    format!("include {};", shipped(relative).display())
}

impl Nginx {
    /// The nginx binary (`MRMAT_TEST_NGINX`, else `nginx` on `PATH` or in `/usr/sbin`), or
    /// `None` after a visible skip line (a failure under CI).
    pub fn binary() -> Option<PathBuf> {
        if let Some(path) = std::env::var_os("MRMAT_TEST_NGINX").filter(|v| !v.is_empty()) {
            return Some(PathBuf::from(path));
        }
        let found = tools::find_program("nginx", &["/usr/sbin", "/usr/local/sbin"]);
        if found.is_none() {
            tools::skip("nginx is not installed (`apt-get install -y nginx`; .ci/run does)");
        }
        found
    }

    /// Starts nginx with the `http {}` content `site` writes, and waits until it accepts
    /// connections.
    pub async fn start(binary: &Path, scheme: Scheme, site: impl Fn(&Site) -> String) -> Self {
        let dir = tempfile::tempdir().expect("nginx prefix directory");
        let tls = match scheme {
            Scheme::Http => String::new(),
            Scheme::Https => {
                let (cert, key) = self_signed_certificate(dir.path());
                format!(
                    "ssl_certificate {};\nssl_certificate_key {};\n",
                    cert.display(),
                    key.display()
                )
            }
        };
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let config = Site {
                listen: match scheme {
                    Scheme::Http => format!("127.0.0.1:{port}"),
                    Scheme::Https => format!("127.0.0.1:{port} ssl"),
                },
                port,
                tls: tls.clone(),
                access_log: dir.path().join("access.log"),
            };
            let conf = dir.path().join("nginx.conf");
            std::fs::write(&conf, main_config(dir.path(), &site(&config)))
                .expect("write nginx.conf");
            match launch(binary, dir.path(), &conf, port).await {
                Ok(process) => {
                    return Self {
                        process,
                        dir,
                        port,
                        scheme,
                    };
                }
                Err(Launch::PortTaken(log)) => last_error = log,
                Err(Launch::Failed(log)) => panic!("nginx did not start:\n{log}"),
            }
        }
        panic!("nginx found no free port in {PORT_ATTEMPTS} attempts:\n{last_error}");
    }

    /// `scheme://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    /// Its access log so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// The access log line containing `needle`, polled for: nginx logs a request when it
    /// has finished it, which may be just after the client has the response.
    pub async fn access_log_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(line) = self.access_log().lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no line with {needle:?} in nginx's access log:\n{}",
                self.access_log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What it wrote to stderr (its error log) so far.
    pub fn error_log(&self) -> String {
        self.process.stderr_text()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // Fast shutdown: SIGTERM makes the master stop its workers too.
        self.process.stop_gracefully("TERM", STOP_TIMEOUT);
    }
}

/// The main configuration around a site: prefix-local paths for everything nginx writes.
fn main_config(dir: &Path, site: &str) -> String {
    let d = dir.display();
    let mut conf = String::new();
    // A root master hands requests to workers running as `nobody`, who could not enter
    // the private temporary directory nor connect to a unix socket there; keep them as
    // the user running the tests. (Not root: nginx ignores `user`, and all runs as us.)
    if running_as_root() {
        conf.push_str("user root;\n");
    }
    let _ = write!(
        conf,
        "worker_processes 1;
events {{ worker_connections 512; }}
http {{
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    access_log {d}/access.log;
{site}
}}
"
    );
    conf
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

enum Launch {
    PortTaken(String),
    Failed(String),
}

async fn launch(binary: &Path, dir: &Path, conf: &Path, port: u16) -> Result<Running, Launch> {
    let globals = format!(
        "daemon off; pid {}; error_log stderr;",
        dir.join("nginx.pid").display()
    );
    let echo = if std::env::var_os("MRMAT_TEST_NGINX_LOG").is_some() {
        Echo::Stderr
    } else {
        Echo::Off
    };
    // -e: the error log from the very start, before the configuration names one (the
    // compiled-in /var/log/nginx/error.log is not ours to write).
    let mut process = Running::spawn_with(
        Command::new(binary)
            .arg("-e")
            .arg("stderr")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(conf)
            .arg("-g")
            .arg(globals)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
        Streams {
            stderr_limit: TAIL_BYTES,
            stderr_echo: echo,
            ..Streams::default()
        },
    );
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = process.wait_timeout(Duration::ZERO) {
            if let Some(stderr) = &process.stderr {
                // Gone: what it wrote last is still in the pipe for a moment.
                stderr.wait_closed(Duration::from_secs(2));
            }
            let log = format!("exit {status}\n{}", process.stderr_text());
            return Err(if log.contains("Address already in use") {
                Launch::PortTaken(log)
            } else {
                Launch::Failed(log)
            });
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(process);
        }
        if Instant::now() >= deadline {
            process.stop_gracefully("TERM", STOP_TIMEOUT);
            return Err(Launch::Failed(format!(
                "not listening on port {port} within {START_TIMEOUT:?}\n{}",
                process.stderr_text()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A self-signed certificate and key for 127.0.0.1 in `dir`, made with the `openssl`
/// command line.
pub fn self_signed_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let mut command = Command::new("openssl");
    command
        .args(["req", "-x509", "-newkey", "ec"])
        .args([
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
        ])
        .args(["-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert);
    let made = run_with_deadline(&mut command, Duration::from_secs(30));
    assert!(
        made.success,
        "openssl could not make a test certificate: {}",
        made.output
    );
    (cert, key)
}
