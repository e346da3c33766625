//! Whether the server is shutting down: set once, on SIGTERM or SIGINT. Readiness then
//! answers 503 and every answer closes its connection. App data of its own, so the
//! request context reads it without the state the handlers share.

use std::sync::atomic::{AtomicBool, Ordering};

/// The drain flag.
#[derive(Debug, Default)]
pub(crate) struct Drain(AtomicBool);

impl Drain {
    /// Whether the server is shutting down.
    pub(crate) fn is_draining(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// From now on, the server is shutting down.
    pub(crate) fn start(&self) {
        self.0.store(true, Ordering::Release);
    }
}
