//! Logging set-up: `env_logger` filtered by `RUST_LOG` (or `--debug`), behind a thin filter
//! of our own that demotes what the HTTP layer logs about bad clients.
//!
//! actix-http answers a malformed request line, an oversized head or a stalled head (400,
//! 431, 408) before any application code runs, then logs the parse error at ERROR. Any
//! client could flood the log that way, and an ERROR should mean the operator has work to
//! do, so those records are logged at DEBUG instead.

use log::{Level, Log, Metadata, Record};

/// Targets whose ERROR records are about the peer, not the server.
const PEER_FAULT_TARGETS: &[&str] = &["actix_http::h1"];

/// Starts logging; `debug` selects the default filter when `RUST_LOG` is not set.
pub fn init(debug: bool) {
    // Debug logging is ours; the HTTP stack's debug output is noise.
    let default = if debug {
        "debug,actix_server=info,actix_http=info,hyper=info,hyper_util=info,reqwest=info,h2=info,rustls=info"
    } else {
        "info"
    };
    let inner =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
            .build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(Demoting { inner })).is_ok() {
        log::set_max_level(max);
    }
}

/// Passes records on, with the HTTP layer's peer-fault errors lowered to DEBUG.
struct Demoting {
    inner: env_logger::Logger,
}

fn is_peer_fault(metadata: &Metadata<'_>) -> bool {
    metadata.level() == Level::Error
        && PEER_FAULT_TARGETS
            .iter()
            .any(|target| metadata.target().starts_with(target))
}

impl Log for Demoting {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !is_peer_fault(record.metadata()) {
            self.inner.log(record);
            return;
        }
        let demoted = Metadata::builder()
            .level(Level::Debug)
            .target(record.target())
            .build();
        if self.inner.enabled(&demoted) {
            self.inner.log(
                &Record::builder()
                    .metadata(demoted)
                    .args(*record.args())
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            );
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_of_the_http_layer_are_peer_faults() {
        let metadata = Metadata::builder()
            .level(Level::Error)
            .target("actix_http::h1::dispatcher")
            .build();
        assert!(is_peer_fault(&metadata));
    }

    #[test]
    fn our_errors_are_not_demoted() {
        let metadata = Metadata::builder()
            .level(Level::Error)
            .target("mrmat_api::error")
            .build();
        assert!(!is_peer_fault(&metadata));
    }
}
