//! Running a short command to its end within a deadline: killed and reported when it
//! overruns, so a stuck tool fails its test instead of hanging it.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a command ended.
#[derive(Debug)]
pub struct Finished {
    /// Exit code 0.
    pub success: bool,
    /// Its stdout and stderr together, for failure messages.
    pub output: String,
}

/// Runs `command` with its output captured; kills it after `timeout`.
pub fn run_with_deadline(command: &mut Command, timeout: Duration) -> Finished {
    let program = format!("{:?}", command.get_program());
    let mut child = match command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            return Finished {
                success: false,
                output: format!("cannot run {program}: {e}"),
            };
        }
    };
    // Readers on threads of their own: a full pipe must not block the child.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(pipe) = stdout.as_mut() {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(pipe) = stderr.as_mut() {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let mut output = out.join().unwrap_or_default();
    output.push_str(&err.join().unwrap_or_default());
    match status {
        Some(status) => Finished {
            success: status.success(),
            output,
        },
        None => Finished {
            success: false,
            output: format!("{program} did not finish within {timeout:?}, killed\n{output}"),
        },
    }
}
