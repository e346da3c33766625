//! Threads that run the requests' database work, taking jobs from one queue in the order
//! they came: one crew with a thread per pooled connection for the reads (and PostgreSQL's
//! writes), and for SQLite's writes a crew of one, its writer.
//!
//! SQLite takes one writer at a time. Its writes used to queue for a turn on the async
//! side and then hop to a blocking thread each: between two writes lay two thread
//! wake-ups, and under load that hand-over, not the write, set the pace (about 3,000
//! creates/s on two cores). Its writer takes the next write as soon as the last has
//! committed. Every write still runs in a transaction of its own, so one write's failure
//! is never another's.
//!
//! Each call used to wait on its async worker for a turn at a connection (a semaphore of
//! one permit per connection) and then hop to a blocking thread: under load two or three
//! thread wake-ups a query (the permit handed to the next waiter, a blocking thread woken
//! for it, the answer sent back), and on PostgreSQL those, not the query, set the pace. A
//! crew thread that finishes takes the next job at once: the answer's wake-up is the only
//! one. With as many threads as connections a thread always finds a connection free, and
//! the queue keeps the arrival order the semaphore was there for.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crossbeam_channel::{Receiver, Sender, TrySendError};

/// One call, with the answer it owes its caller.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// Why a call could not be queued.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    /// The queue is full.
    #[error("{0} database calls are already waiting for their turn")]
    Full(usize),
    /// Every thread is gone (they cannot be: they outlive every sender).
    #[error("the database threads have stopped")]
    Stopped,
}

/// The sending end of the crew's queue. The threads end when the last clone is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Crew {
    jobs: Sender<Job>,
}

impl Crew {
    /// Starts `threads` threads (at least one), named `name-N` (one alone: `name`). At most `queue` calls may
    /// wait for one; one more is answered 503 at once. Each waits at most `--db-timeout`
    /// anyway; this bounds the memory a flood can hold.
    pub(crate) fn start(name: &str, threads: u32, queue: usize) -> std::io::Result<Self> {
        let (jobs, waiting) = crossbeam_channel::bounded(queue);
        let threads = threads.max(1);
        for n in 0..threads {
            let waiting = waiting.clone();
            std::thread::Builder::new()
                .name(match threads {
                    1 => name.to_owned(),
                    _ => format!("{name}-{n}"),
                })
                .spawn(move || run(&waiting))?;
        }
        Ok(Self { jobs })
    }

    /// Queues `job`; the next free thread runs it, after the jobs queued before it.
    pub(crate) fn submit(&self, job: Job) -> Result<(), Refused> {
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => Refused::Full(self.jobs.capacity().unwrap_or(0)),
            TrySendError::Disconnected(_) => Refused::Stopped,
        })
    }
}

fn run(queue: &Receiver<Job>) {
    for job in queue {
        // A job that panicked has dropped its answer (its caller gets a 500); the thread
        // goes on with the next.
        if catch_unwind(AssertUnwindSafe(job)).is_err() {
            log::error!("a database call panicked; its thread goes on with the next");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::channel;
    use std::time::Duration;

    use super::*;

    #[test]
    fn one_thread_runs_the_jobs_in_the_order_they_were_queued() {
        let crew = Crew::start("test", 1, 1024).unwrap();
        let (done, results) = channel();
        for i in 0..100 {
            let done = done.clone();
            crew.submit(Box::new(move || done.send(i).unwrap()))
                .unwrap();
        }
        let order: Vec<i32> = (0..100).map(|_| results.recv().unwrap()).collect();
        assert_eq!(order, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn the_threads_run_jobs_side_by_side() {
        let crew = Crew::start("test", 4, 1024).unwrap();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let (done, results) = channel();
        for _ in 0..4 {
            let (barrier, done) = (barrier.clone(), done.clone());
            crew.submit(Box::new(move || {
                // Passes only when four jobs run at once.
                barrier.wait();
                done.send(()).unwrap();
            }))
            .unwrap();
        }
        for _ in 0..4 {
            assert!(results.recv_timeout(Duration::from_secs(5)).is_ok());
        }
    }

    #[test]
    fn a_job_beyond_the_queue_is_refused_at_once() {
        let crew = Crew::start("test", 1, 1).unwrap();
        let (started, running) = channel();
        let (release, hold) = channel::<()>();
        crew.submit(Box::new(move || {
            started.send(()).unwrap();
            let _ = hold.recv();
        }))
        .unwrap();
        running.recv().unwrap();
        crew.submit(Box::new(|| {})).unwrap();
        assert!(matches!(
            crew.submit(Box::new(|| {})),
            Err(Refused::Full(1))
        ));
        drop(release);
    }

    #[test]
    fn a_job_that_panics_does_not_stop_its_thread() {
        let crew = Crew::start("test", 1, 1024).unwrap();
        let (done, results) = channel();
        crew.submit(Box::new(|| panic!("boom"))).unwrap();
        crew.submit(Box::new(move || done.send(()).unwrap()))
            .unwrap();
        assert!(results.recv_timeout(Duration::from_secs(5)).is_ok());
    }
}
