//! Faults from outside: a full disk, a database that refuses, stops answering, holds its
//! lock, is shut down or kills our connection mid-query, a process killed mid-write, a
//! provider answering too much. Every fault is made by parts the tests start themselves
//! (a small tmpfs, a cuttable TCP proxy, a private PostgreSQL server, a test provider), never
//! by touching the machine's shared PostgreSQL server. Each test checks what the server
//! answers, within which bound, that nothing acknowledged is lost, and that it recovers
//! without a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod crash;
mod disk_full;
mod hostile_provider;
mod log_sink;
mod postgres;
mod process;
mod provider;
mod rejections;
mod sqlite_lock;
mod support;
mod wal;
