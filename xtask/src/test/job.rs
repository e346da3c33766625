//! One job: a test in a process of its own, or a whole test binary whose tests share one
//! process, run with a time limit; on the limit the job and every process it started
//! are killed.

use std::io::{Read, Seek};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::build::TestBinary;
use super::tree;

/// What a test came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It passed.
    Passed,
    /// It passed without running its check, and said why on a line `skipped: ...`.
    Skipped,
    /// It failed.
    Failed,
    /// It was still running at the time limit, and was killed.
    TimedOut,
}

/// Which tests a job runs.
#[derive(Debug)]
pub enum Scope {
    /// One test, by its full name, alone in its process.
    One(String),
    /// These tests of the binary, in one process (libtest runs them on its threads).
    Shared(Vec<String>),
}

/// Tests to run in one process.
#[derive(Debug)]
pub struct Job {
    /// The binary that holds them.
    pub binary: Arc<TestBinary>,
    /// Which of its tests.
    pub scope: Scope,
    /// How long the process may run before it is killed.
    pub limit: Duration,
}

/// A finished job.
#[derive(Debug)]
pub struct Finished {
    /// Each test with what it came to.
    pub outcomes: Vec<(String, Outcome)>,
    /// How long the process ran.
    pub elapsed: Duration,
    /// What it printed, stdout and stderr in the order written.
    pub output: String,
}

/// The prefix of the line a test prints when it does not run its check (tests/src/tools.rs).
const SKIP_PREFIX: &str = "skipped:";

impl Job {
    /// Runs the job; `on_slow` is called once if it is still running after `slow_after`.
    pub fn run(&self, slow_after: Duration, on_slow: impl FnOnce()) -> Finished {
        let started = Instant::now();
        let spawned = tempfile::tempfile().and_then(|log| {
            let mut command = self.command();
            command
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log.try_clone()?);
            Ok((command.spawn()?, log))
        });
        let (mut child, mut log) = match spawned {
            Ok(spawned) => spawned,
            Err(e) => {
                return self.finish(
                    started,
                    false,
                    false,
                    format!("cannot start {}: {e}", self.binary.executable.display()),
                );
            }
        };
        let mut on_slow = Some(on_slow);
        let (exited, timed_out) = loop {
            match child.try_wait() {
                Ok(Some(status)) => break (Some(status), false),
                Ok(None) => {}
                Err(_) => break (None, false),
            }
            let elapsed = started.elapsed();
            if elapsed >= self.limit {
                // Children first, found while the job's process still holds them.
                let mut pids = tree::descendants(child.id());
                pids.push(child.id());
                tree::kill(&pids);
                let _ = child.wait();
                break (None, true);
            }
            if elapsed >= slow_after
                && let Some(on_slow) = on_slow.take()
            {
                on_slow();
            }
            // Most tests take well under a second: poll often at first.
            std::thread::sleep(if elapsed < Duration::from_secs(1) {
                Duration::from_millis(2)
            } else {
                Duration::from_millis(25)
            });
        };
        let succeeded = exited.is_some_and(|status| status.success());
        let mut bytes = Vec::new();
        let _ = log.rewind().and_then(|()| log.read_to_end(&mut bytes));
        let mut output = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(status) = exited.filter(|status| !status.success()) {
            // A test can pass and its process still fail while exiting (a signal, an exit
            // handler): say so, or the failure reads as a contradiction.
            output.push_str(&format!("\n(the test process ended: {status})\n"));
        }
        self.finish(started, succeeded, timed_out, output)
    }

    fn command(&self) -> Command {
        let binary = &self.binary;
        let mut command = Command::new(&binary.executable);
        match &self.scope {
            Scope::One(name) => {
                command.args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"]);
            }
            Scope::Shared(names) => {
                // Captured per test and shown per test (successes too, for the skip lines).
                command.arg("--show-output").args(names).arg("--exact");
            }
        }
        // What `cargo test` sets for a test binary it runs.
        command
            .current_dir(&binary.package_dir)
            .env("CARGO_MANIFEST_DIR", &binary.package_dir)
            .env("CARGO_PKG_NAME", &binary.package);
        command
    }

    fn finish(
        &self,
        started: Instant,
        succeeded: bool,
        timed_out: bool,
        output: String,
    ) -> Finished {
        let outcomes = match &self.scope {
            Scope::One(name) => {
                let outcome = if timed_out {
                    Outcome::TimedOut
                } else if !succeeded {
                    Outcome::Failed
                } else if said_skipped(name, &output) {
                    Outcome::Skipped
                } else {
                    Outcome::Passed
                };
                vec![(name.clone(), outcome)]
            }
            Scope::Shared(names) => shared_outcomes(names, &output, timed_out),
        };
        Finished {
            outcomes,
            elapsed: started.elapsed(),
            output,
        }
    }
}

/// Whether a test run alone said it skipped: on a line of its own, or right after
/// libtest's `test NAME ... `, which stands unfinished while the test runs.
fn said_skipped(name: &str, output: &str) -> bool {
    let started = format!("test {name} ... ");
    output.lines().any(|line| {
        line.strip_prefix(&started)
            .unwrap_or(line)
            .starts_with(SKIP_PREFIX)
    })
}

/// Each test's outcome from libtest's own lines: `test NAME ... ok` (or `FAILED`), and,
/// for the skip lines, the `---- NAME stdout ----` section `--show-output` prints for it.
fn shared_outcomes(names: &[String], output: &str, timed_out: bool) -> Vec<(String, Outcome)> {
    let mut section: Option<&str> = None;
    let mut results: std::collections::HashMap<&str, Outcome> = Default::default();
    let mut skipped: std::collections::HashSet<&str> = Default::default();
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("test ") {
            if let Some((name, result)) = rest.rsplit_once(" ... ") {
                let outcome = match result.trim() {
                    "ok" => Outcome::Passed,
                    "ignored" => continue,
                    _ => Outcome::Failed,
                };
                results.insert(name, outcome);
            }
        } else if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|l| l.strip_suffix(" stdout ----"))
        {
            section = Some(name);
        } else if line.starts_with(SKIP_PREFIX)
            && let Some(name) = section
        {
            skipped.insert(name);
        }
    }
    names
        .iter()
        .map(|name| {
            let outcome = match results.get(name.as_str()) {
                Some(Outcome::Passed) if skipped.contains(name.as_str()) => Outcome::Skipped,
                Some(outcome) => *outcome,
                None if timed_out => Outcome::TimedOut,
                None => Outcome::Failed,
            };
            (name.clone(), outcome)
        })
        .collect()
}

/// The tests of `binary` that the filters select, as `cargo test FILTER` would.
pub fn list(binary: &TestBinary, filters: &[String]) -> Result<Vec<String>, String> {
    let output = Command::new(&binary.executable)
        .args(["--list", "--format", "terse"])
        .args(filters)
        .current_dir(&binary.package_dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", binary.executable.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} --list: {}\n{}",
            binary.name,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_shared_binary_s_results_are_read_per_test() {
        let output = "\
running 3 tests
test a::works ... ok
test b::breaks ... FAILED
test c::skips ... ok

successes:

---- a::works stdout ----
fine

---- c::skips stdout ----
skipped: no Java here
";
        let outcomes = shared_outcomes(
            &names(&["a::works", "b::breaks", "c::skips"]),
            output,
            false,
        );
        assert_eq!(
            outcomes.iter().map(|(_, o)| *o).collect::<Vec<_>>(),
            [Outcome::Passed, Outcome::Failed, Outcome::Skipped]
        );
    }

    #[test]
    fn a_skip_line_right_after_libtest_s_test_line_is_a_skip() {
        let output = "running 1 test\ntest a::b ... skipped: no PostgreSQL\nok\n";
        assert!(said_skipped("a::b", output));
    }

    #[test]
    fn a_skip_line_of_its_own_is_a_skip() {
        assert!(said_skipped("a::b", "running 1 test\nskipped: no nginx\n"));
    }

    #[test]
    fn skipped_inside_a_line_is_no_skip() {
        assert!(!said_skipped(
            "a::b",
            "test a::b ... the user skipped: nothing\nok\n"
        ));
    }

    #[test]
    fn a_test_with_no_result_in_a_killed_binary_timed_out() {
        let outcomes = shared_outcomes(&names(&["slow"]), "running 1 test\n", true);
        assert_eq!(outcomes[0].1, Outcome::TimedOut);
    }

    #[test]
    fn a_test_with_no_result_in_a_binary_that_ended_failed() {
        let outcomes = shared_outcomes(&names(&["gone"]), "running 1 test\n", false);
        assert_eq!(outcomes[0].1, Outcome::Failed);
    }
}
