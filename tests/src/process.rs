//! Child processes with bounds: every process a test starts is read by threads of its
//! own (so it never blocks on a full pipe), waited for with a deadline, and killed with
//! SIGKILL when the deadline passes or the test gives up on it.
//!
//! SIGKILL, not SIGTERM: a Node.js process whose main thread is stuck never runs its
//! JavaScript signal handlers, so SIGTERM would leave it running.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How much of a stream a diagnostic keeps: its last 64 KiB.
pub const TAIL_BYTES: usize = 64 * 1024;

/// How long a command that should finish promptly (a client call, `migrate`) may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a killed process may take to be reaped, and a closed pipe to be read out.
const REAP_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a wait checks whether the child has exited.
const POLL: Duration = Duration::from_millis(10);

/// Where a captured stream is also copied as it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    /// Nowhere: only kept.
    Off,
    /// This process's stderr, past the test harness's output capture (the way an
    /// inherited stderr would show).
    Stderr,
}

#[derive(Debug, Default)]
struct Buffer {
    bytes: VecDeque<u8>,
    /// Bytes dropped from the front to stay within the limit.
    dropped: usize,
    /// The stream reached end-of-file (or failed).
    closed: bool,
}

/// What a child wrote to one stream, kept by a reader thread: everything, or the last
/// `limit` bytes. Clones share the same buffer.
#[derive(Debug, Clone)]
pub struct Capture {
    shared: Arc<(Mutex<Buffer>, Condvar)>,
}

/// Why [`Capture::wait_for`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    /// The stream closed (the process exited) without it.
    Closed,
    /// The deadline passed.
    TimedOut,
}

impl Capture {
    /// Starts a thread reading `stream` to its end, keeping the last `limit` bytes.
    pub fn start(stream: impl Read + Send + 'static, limit: usize, echo: Echo) -> Self {
        let capture = Self {
            shared: Arc::new((Mutex::new(Buffer::default()), Condvar::new())),
        };
        let sink = capture.clone();
        std::thread::spawn(move || sink.read_all(stream, limit, echo));
        capture
    }

    fn read_all(&self, mut stream: impl Read, limit: usize, echo: Echo) {
        let mut chunk = [0u8; 8192];
        loop {
            let n = match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if echo == Echo::Stderr {
                let _ = std::io::stderr().write_all(&chunk[..n]);
            }
            let mut buffer = self.lock();
            buffer.bytes.extend(&chunk[..n]);
            let excess = buffer.bytes.len().saturating_sub(limit);
            buffer.bytes.drain(..excess);
            buffer.dropped += excess;
            drop(buffer);
            self.shared.1.notify_all();
        }
        self.lock().closed = true;
        self.shared.1.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, Buffer> {
        // A reader thread never panics while holding the lock; recover the data anyway.
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bytes kept so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.lock().bytes.iter().copied().collect()
    }

    /// The text kept so far, saying how much was dropped from the front.
    pub fn text(&self) -> String {
        let buffer = self.lock();
        let (front, back) = buffer.bytes.as_slices();
        let text = String::from_utf8_lossy(&[front, back].concat()).into_owned();
        match buffer.dropped {
            0 => text,
            dropped => format!("[... {dropped} earlier bytes dropped ...]\n{text}"),
        }
    }

    /// Waits until `find` recognises what was written so far, for at most `timeout`.
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        mut find: impl FnMut(&str) -> Option<T>,
    ) -> Result<T, WaitError> {
        let deadline = Instant::now() + timeout;
        let mut buffer = self.lock();
        loop {
            let (front, back) = buffer.bytes.as_slices();
            if let Some(found) = find(&String::from_utf8_lossy(&[front, back].concat())) {
                return Ok(found);
            }
            if buffer.closed {
                return Err(WaitError::Closed);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(WaitError::TimedOut);
            }
            buffer = self
                .shared
                .1
                .wait_timeout(buffer, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits until the stream is closed, for at most `timeout`; whether it is.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        self.wait_for(timeout, |_| None::<()>) == Err(WaitError::Closed)
    }
}

/// A started child process, killed and reaped when dropped, so a failing test leaves
/// nothing running. Its piped stdout and stderr are captured.
#[derive(Debug)]
pub struct Running {
    child: Child,
    name: String,
    /// Its stdout, when piped.
    pub stdout: Option<Capture>,
    /// Its stderr, when piped.
    pub stderr: Option<Capture>,
}

/// How much of each piped stream [`Running::spawn_with`] keeps, and where it echoes.
#[derive(Debug, Clone, Copy)]
pub struct Streams {
    /// Bytes of stdout kept.
    pub stdout_limit: usize,
    /// Bytes of stderr kept.
    pub stderr_limit: usize,
    /// Where stderr is copied as it arrives.
    pub stderr_echo: Echo,
}

impl Default for Streams {
    /// Everything kept, nothing echoed.
    fn default() -> Self {
        Self {
            stdout_limit: usize::MAX,
            stderr_limit: usize::MAX,
            stderr_echo: Echo::Off,
        }
    }
}

impl Running {
    /// Spawns `command` as configured, keeping everything it writes to a piped stream.
    pub fn spawn(command: &mut Command) -> Self {
        Self::spawn_with(command, Streams::default())
    }

    /// Spawns `command` as configured, capturing piped streams as `streams` says.
    pub fn spawn_with(command: &mut Command, streams: Streams) -> Self {
        Self::try_spawn_with(command, streams).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_spawn_with(command: &mut Command, streams: Streams) -> Result<Self, RunError> {
        let name = program_name(command);
        let child = command.spawn().map_err(|e| RunError::Start {
            program: name.clone(),
            error: e.to_string(),
        })?;
        Ok(Self::adopt_with(child, name, streams))
    }

    /// Takes charge of a child spawned elsewhere, called `name` in messages: it is killed
    /// and reaped when dropped. The piped streams still in `child` are captured; take one
    /// out first to handle it yourself (say, a pipe a test must leave unread).
    pub fn adopt(child: Child, name: &str) -> Self {
        Self::adopt_with(child, name.to_owned(), Streams::default())
    }

    fn adopt_with(mut child: Child, name: String, streams: Streams) -> Self {
        let stdout = child
            .stdout
            .take()
            .map(|s| Capture::start(s, streams.stdout_limit, Echo::Off));
        let stderr = child
            .stderr
            .take()
            .map(|s| Capture::start(s, streams.stderr_limit, streams.stderr_echo));
        Self {
            child,
            name,
            stdout,
            stderr,
        }
    }

    /// The program's file name, for messages (never its arguments: they may hold secrets).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Takes its piped stdin.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// Waits for it to exit, for at most `timeout`; `None` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.reap_within(timeout)
            .unwrap_or_else(|e| panic!("wait for {}: {e}", self.name))
    }

    fn reap_within(&mut self, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait()? {
                Some(status) => return Ok(Some(status)),
                None if Instant::now() < deadline => std::thread::sleep(POLL),
                None => return Ok(None),
            }
        }
    }

    /// Waits for it to exit; after `timeout` kills it and returns `None`.
    pub fn wait_or_kill(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = self.wait_timeout(timeout);
        if status.is_none() {
            self.kill();
        }
        status
    }

    /// Sends it `signal` (a name such as `TERM` or `QUIT`) and waits up to `grace` for it
    /// to exit; kills it when it has not. Its exit status, `None` when it had to be killed.
    /// Never panics (fit for `drop`): for a process that must stop its own children
    /// first, as an nginx master stops its workers, which SIGKILL would leave running.
    pub fn stop_gracefully(&mut self, signal: &str, grace: Duration) -> Option<ExitStatus> {
        if matches!(self.child.try_wait(), Ok(None)) {
            // A failed `kill` means the process is gone already; the wait tells.
            let _ = send_signal(self.id(), signal);
        }
        let status = self.reap_within(grace).ok().flatten();
        if status.is_none() {
            self.kill();
        }
        status
    }

    /// Kills it (SIGKILL) and reaps it. Never panics: it runs in `drop`, also while a
    /// failing test unwinds.
    pub fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            if !matches!(self.reap_within(REAP_TIMEOUT), Ok(Some(_))) {
                // Only an uninterruptible kernel wait survives SIGKILL this long.
                eprintln!("{} (pid {}) survived SIGKILL", self.name, self.id());
            }
        }
    }

    /// Its stderr so far (the kept part), or a note that it was not captured.
    pub fn stderr_text(&self) -> String {
        self.stderr
            .as_ref()
            .map_or_else(|| "(stderr not captured)".to_owned(), Capture::text)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Why [`try_output`] has no output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// It could not be started (not installed, not executable).
    Start {
        /// The program's file name.
        program: String,
        /// Why.
        error: String,
    },
    /// It was still running at its deadline and was killed.
    Overran {
        /// The program's file name.
        program: String,
        /// The deadline it missed.
        timeout: Duration,
        /// What it had written to stderr (the last [`TAIL_BYTES`]).
        stderr: String,
    },
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Start { program, error } => write!(f, "cannot run {program}: {error}"),
            Self::Overran {
                program,
                timeout,
                stderr,
            } => write!(
                f,
                "{program} did not finish within {timeout:?} and was killed; its stderr:\n{stderr}"
            ),
        }
    }
}

/// Runs `command` to completion with stdin empty and its output collected, like
/// [`Command::output`], but kills it after `timeout`. Never panics (fit for `drop`).
pub fn try_output(command: &mut Command, timeout: Duration) -> Result<Output, RunError> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut running = Running::try_spawn_with(command, Streams::default())?;
    let Some(status) = running.reap_within(timeout).ok().flatten() else {
        running.kill();
        let stderr = running.stderr_text();
        let kept = stderr.len().saturating_sub(TAIL_BYTES);
        return Err(RunError::Overran {
            program: running.name.clone(),
            timeout,
            stderr: stderr[stderr.ceil_char_boundary(kept)..].to_owned(),
        });
    };
    let [stdout, stderr] = [&running.stdout, &running.stderr].map(|capture| {
        capture.as_ref().map_or_else(Vec::new, |c| {
            // Closed at once unless a grandchild kept the pipe open: take what is there.
            c.wait_closed(REAP_TIMEOUT);
            c.bytes()
        })
    });
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// [`try_output`] for a test: panics (with the program's stderr) when it cannot be run
/// or overruns `timeout`.
pub fn output(command: &mut Command, timeout: Duration) -> Output {
    try_output(command, timeout).unwrap_or_else(|e| panic!("{e}"))
}

/// How a command run by [`run_with_deadline`] ended.
#[derive(Debug)]
pub struct Finished {
    /// Exit code 0.
    pub success: bool,
    /// Its stdout and stderr together, or why it did not finish, for failure messages.
    pub output: String,
}

/// [`try_output`] for set-up and clean-up tools (`initdb`, `pg_ctl`, `mount`): whether it
/// succeeded and what it said. Never panics.
pub fn run_with_deadline(command: &mut Command, timeout: Duration) -> Finished {
    match try_output(command, timeout) {
        Ok(output) => Finished {
            success: output.status.success(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        },
        Err(e) => Finished {
            success: false,
            output: e.to_string(),
        },
    }
}

/// [`output`] for async tests: runs on the blocking pool, so the test's runtime goes on.
pub async fn output_async(mut command: Command, timeout: Duration) -> Output {
    match tokio::task::spawn_blocking(move || output(&mut command, timeout)).await {
        Ok(output) => output,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("run a command: {e}"),
    }
}

/// Sends `signal` (a name such as `TERM`, or a number) to `pid` with the `kill` command;
/// whether it was delivered. Never panics.
pub fn send_signal(pid: u32, signal: &str) -> bool {
    let mut kill = Command::new("kill");
    kill.arg(format!("-{signal}")).arg(pid.to_string());
    try_output(&mut kill, COMMAND_TIMEOUT).is_ok_and(|o| o.status.success())
}

fn program_name(command: &Command) -> String {
    Path::new(command.get_program())
        .file_name()
        .unwrap_or(command.get_program())
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn output_collects_status_stdout_and_stderr() {
        let out = output(&mut sh("echo out; echo err >&2; exit 3"), COMMAND_TIMEOUT);
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn output_kills_a_command_that_overruns_and_reports_its_stderr() {
        let started = Instant::now();
        let panic = std::panic::catch_unwind(|| {
            output(
                &mut sh("echo still working >&2; exec sleep 60"),
                Duration::from_millis(300),
            )
        })
        .expect_err("the command overran");
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(started.elapsed() < Duration::from_secs(10), "{message}");
        assert!(
            message.contains("sh did not finish within 300ms"),
            "{message}"
        );
        assert!(message.contains("still working"), "{message}");
    }

    #[test]
    fn a_program_that_cannot_start_is_an_error_not_a_panic() {
        let result = try_output(&mut Command::new("/nonexistent/program"), COMMAND_TIMEOUT);
        assert!(
            matches!(&result, Err(RunError::Start { program, .. }) if program == "program"),
            "{result:?}"
        );
    }

    #[test]
    fn a_dropped_child_is_killed() {
        let mut command = sh("exec sleep 60");
        let running = Running::spawn(&mut command);
        let pid = running.id();
        drop(running);
        // Reaped: its /proc entry is gone (a zombie would still have one).
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn stop_gracefully_lets_the_child_handle_the_signal() {
        let mut command = sh("trap 'exit 7' TERM; while :; do sleep 0.1; done");
        let mut running = Running::spawn(&mut command);
        // Give sh a moment to install its trap.
        std::thread::sleep(Duration::from_millis(200));
        let status = running.stop_gracefully("TERM", Duration::from_secs(10));
        assert_eq!(status.and_then(|s| s.code()), Some(7));
    }

    #[test]
    fn stop_gracefully_kills_a_child_that_ignores_the_signal() {
        let mut command = sh("trap '' TERM; while :; do sleep 0.1; done");
        let mut running = Running::spawn(&mut command);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            running.stop_gracefully("TERM", Duration::from_millis(300)),
            None
        );
        let pid = running.id();
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn a_capture_keeps_only_the_last_bytes_and_says_so() {
        let capture = Capture::start(&b"0123456789"[..], 4, Echo::Off);
        assert!(capture.wait_closed(REAP_TIMEOUT));
        assert_eq!(capture.bytes(), b"6789");
        assert!(capture.text().contains("[... 6 earlier bytes dropped ...]"));
    }

    #[test]
    fn wait_for_gives_up_at_the_deadline() {
        let mut command = sh("exec sleep 60");
        command.stdout(Stdio::piped());
        let running = Running::spawn(&mut command);
        let stdout = running.stdout.clone().expect("piped");
        let started = Instant::now();
        let found = stdout.wait_for(Duration::from_millis(200), |text| {
            text.contains('\n').then_some(())
        });
        assert_eq!(found, Err(WaitError::TimedOut));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
