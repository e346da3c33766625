//! Where the server listens: the TCP port (`PORT` too, as container platforms set it), a
//! unix socket instead, and the separate address of `/metrics`.
//!
//! Reads: `PORT`.

use std::path::PathBuf;

use super::ConfigError;
use crate::cli::defaults;

/// A unix socket to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixSocket {
    /// Its path.
    pub path: PathBuf,
    /// Its file mode.
    pub mode: u32,
}

/// Default file mode of the unix socket.
pub use defaults::SOCKET_MODE as DEFAULT_SOCKET_MODE;

/// `unix:PATH` and an octal mode.
pub(super) fn parse_bind(bind: &str, mode: Option<&str>) -> Result<UnixSocket, ConfigError> {
    let path = bind
        .strip_prefix("unix:")
        .filter(|path| !path.is_empty())
        .ok_or_else(|| {
            ConfigError::invalid(
                "--bind",
                "must be unix:PATH (for TCP use --host and --port)",
            )
        })?;
    let mode = match mode {
        None => DEFAULT_SOCKET_MODE,
        Some(text) => u32::from_str_radix(text.trim().trim_start_matches("0o"), 8)
            .ok()
            .filter(|mode| *mode <= 0o777)
            .ok_or_else(|| {
                ConfigError::invalid("--socket-mode", "must be an octal file mode such as 660")
            })?,
    };
    // Peers on the socket are trusted like --trusted-proxies (a unix peer has no address
    // to check): whoever may connect sets the client address, scheme and host the server
    // believes. A bit for others would hand that to every user on the machine.
    if mode & 0o007 != 0 {
        return Err(ConfigError::invalid(
            "--socket-mode",
            format!(
                "{mode:03o} lets other users on this machine connect, and peers on the socket are trusted as proxies (they name the client address and host); use 660 (the owner and the proxy's group) or 600"
            ),
        ));
    }
    Ok(UnixSocket {
        path: PathBuf::from(path),
        mode,
    })
}

/// `HOST:PORT`, with `[v6]:PORT` for IPv6.
pub(super) fn parse_host_port(text: &str) -> Result<(String, u16), ConfigError> {
    let invalid = || {
        ConfigError::invalid(
            "--metrics-addr",
            format!("{text:?} is not HOST:PORT (e.g. 0.0.0.0:9090)"),
        )
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(invalid)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse::<u16>().map_err(|_| invalid())?;
    if host.is_empty() {
        return Err(invalid());
    }
    Ok((host.to_owned(), port))
}

pub(super) fn port_from_env() -> Result<Option<u16>, ConfigError> {
    match std::env::var("PORT") {
        Ok(value) if !value.trim().is_empty() => value.trim().parse().map(Some).map_err(|_| {
            ConfigError::invalid("PORT", format!("{value:?} is not a port (0-65535)"))
        }),
        _ => Ok(None),
    }
}
