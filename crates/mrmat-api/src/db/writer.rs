//! SQLite's one writer: a thread of its own that runs the writes one after another.
//!
//! SQLite takes one writer at a time. Writes used to queue for a turn on the async side and
//! then hop to a blocking thread each: between two writes lay two thread wake-ups, and
//! under load that hand-over, not the write, set the pace (about 3,000 creates/s on two
//! cores). Here the writes queue in a channel and this thread takes the next as soon as
//! the last has committed. Every write still runs in a transaction of its own, so one
//! write's failure is never another's.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

/// Writes that may wait for their turn; one more is answered 503 at once. Each waits at
/// most `--db-timeout` anyway; this bounds the memory a flood of writes can hold.
const QUEUE: usize = 1024;

/// One write, with the answer it owes its caller.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// Why a write could not be queued.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    /// The queue is full.
    #[error("{QUEUE} writes are already waiting for their turn")]
    Full,
    /// The writer thread is gone (it cannot be: it outlives every sender).
    #[error("the writer thread has stopped")]
    Stopped,
}

/// The sending end of the writer thread's queue. The thread ends when the last clone is
/// dropped.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    jobs: SyncSender<Job>,
}

impl Writer {
    /// Starts the writer thread.
    pub(crate) fn start() -> std::io::Result<Self> {
        let (jobs, queue) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || run(queue))?;
        Ok(Self { jobs })
    }

    /// Queues `job`; it runs after the writes queued before it.
    pub(crate) fn submit(&self, job: Job) -> Result<(), Refused> {
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => Refused::Full,
            TrySendError::Disconnected(_) => Refused::Stopped,
        })
    }
}

fn run(queue: Receiver<Job>) {
    for job in queue {
        // A write that panicked has dropped its answer (its caller gets a 500); the
        // writes behind it must still run.
        if catch_unwind(AssertUnwindSafe(job)).is_err() {
            log::error!("a database write panicked; the writer goes on with the next");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    #[test]
    fn writes_run_in_the_order_they_were_queued() {
        let writer = Writer::start().unwrap();
        let (done, results) = channel();
        for i in 0..100 {
            let done = done.clone();
            writer
                .submit(Box::new(move || done.send(i).unwrap()))
                .unwrap();
        }
        let order: Vec<i32> = (0..100).map(|_| results.recv().unwrap()).collect();
        assert_eq!(order, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn a_write_that_panics_does_not_stop_the_ones_behind_it() {
        let writer = Writer::start().unwrap();
        let (done, results) = channel();
        writer.submit(Box::new(|| panic!("boom"))).unwrap();
        writer
            .submit(Box::new(move || done.send(()).unwrap()))
            .unwrap();
        assert!(
            results
                .recv_timeout(std::time::Duration::from_secs(5))
                .is_ok()
        );
    }
}
