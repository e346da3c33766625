//! `cargo xtask test`: the README's test command.
//!
//! Why not `cargo test` alone: libtest runs a binary's tests on threads of one process and
//! has no time limit on stable Rust, so one hung test would hang the run, unnamed. Why not
//! cargo-nextest, which did this before: it is not on a new machine, and building it costs
//! CI about 11 minutes. So this runner does the part of nextest the suite relies on, with
//! cargo and the test binaries alone:
//!
//! - each test in a process of its own (`--exact`), one per CPU at a time (`--test-jobs N`);
//! - reported SLOW after [`SLOW_AFTER`] and, with every process it started, killed and
//!   failed by name after [`TEST_LIMIT`]; no test is retried;
//! - a test that printed `skipped: ...` is counted as skipped, and under CI (`CI` set) a
//!   skip fails the run: CI runs every test;
//! - the closing line reads `summary: N passed, N failed, N skipped`.
//!
//! The binaries in [`SHARED_PROCESS`] run as one process each instead, their tests on
//! libtest's threads, because their tests share a provider that costs tens of seconds to
//! start (Keycloak): one start per run, not one per test. Every wait inside them is bounded
//! by the testkit, and the process as a whole by [`SHARED_LIMIT`].

mod build;
mod job;
mod tree;

use std::collections::VecDeque;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use job::{Finished, Job, Outcome, Scope};

/// A test still running after this is reported as SLOW.
pub const SLOW_AFTER: Duration = Duration::from_secs(60);

/// A test still running after this is killed and fails. The slowest test takes about
/// 20 s; the longest bounded wait inside a test (a provider that never gets ready: started
/// twice, 30 s each) ends at about 62 s, and a first `npm ci` is bounded at 120 s, so each
/// of those reports its own cause first.
pub const TEST_LIMIT: Duration = Duration::from_secs(180);

/// Test binaries (by target name) whose tests share one process.
pub const SHARED_PROCESS: &[&str] = &["keycloak"];

/// How long such a binary may run: Keycloak's download on a first run (bounded at 300 s
/// by the testkit) and its start, then its tests.
pub const SHARED_LIMIT: Duration = Duration::from_secs(900);

/// Whether CI is running this (`CI` set and not empty), as the testkit decides it.
fn under_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// `cargo xtask test [--test-jobs N] [CARGO_TEST_OPTIONS] [-- FILTER...]`.
pub fn main(args: Vec<String>) -> ExitCode {
    let (options, filters) = match args.iter().position(|a| a == "--") {
        Some(at) => (args[..at].to_vec(), args[at + 1..].to_vec()),
        None => (args, Vec::new()),
    };
    let (jobs, cargo_options) = match take_jobs(options) {
        Ok(split) => split,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let Some(binaries) = build::build(&cargo_options) else {
        eprintln!("error: the tests did not build");
        return ExitCode::from(101);
    };
    let mut queue = VecDeque::new();
    for binary in binaries {
        let tests = match job::list(&binary, &filters) {
            Ok(tests) => tests,
            Err(message) => {
                eprintln!("error: {message}");
                return ExitCode::FAILURE;
            }
        };
        if tests.is_empty() {
            continue;
        }
        let binary = Arc::new(binary);
        if SHARED_PROCESS.contains(&binary.target.as_str()) {
            // Longest first: it overlaps the many short jobs.
            queue.push_front(Job {
                binary,
                scope: Scope::Shared(tests),
                limit: SHARED_LIMIT,
            });
        } else {
            queue.extend(tests.into_iter().map(|test| Job {
                binary: Arc::clone(&binary),
                scope: Scope::One(test),
                limit: TEST_LIMIT,
            }));
        }
    }
    let total: usize = queue
        .iter()
        .map(|job| match &job.scope {
            Scope::One(_) => 1,
            Scope::Shared(tests) => tests.len(),
        })
        .sum();
    eprintln!("Starting {total} tests, {jobs} at a time");
    let started = Instant::now();
    let tally = run_all(queue, jobs);
    tally.close(started.elapsed())
}

/// Splits `--test-jobs N` off the cargo options.
fn take_jobs(options: Vec<String>) -> Result<(usize, Vec<String>), String> {
    let mut jobs = std::thread::available_parallelism().map_or(2, usize::from);
    let mut rest = Vec::new();
    let mut options = options.into_iter();
    while let Some(option) = options.next() {
        let value = match option.strip_prefix("--test-jobs") {
            Some("") => options.next(),
            Some(v) if v.starts_with('=') => Some(v[1..].to_owned()),
            _ => {
                rest.push(option);
                continue;
            }
        };
        jobs = value
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0)
            .ok_or("--test-jobs takes a whole number of at least 1")?;
    }
    Ok((jobs, rest))
}

/// Runs the jobs on `jobs` threads, printing each test's line as it ends.
fn run_all(queue: VecDeque<Job>, jobs: usize) -> Tally {
    let queue = Mutex::new(queue);
    let tally = Mutex::new(Tally::default());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                // The guard is dropped inside `map_or`: no job runs with the queue locked.
                while let Some(job) = queue.lock().map_or(None, |mut q| q.pop_front()) {
                    let finished = job.run(SLOW_AFTER, || {
                        eprintln!("    SLOW [>{:>5}s] {}", SLOW_AFTER.as_secs(), label(&job));
                    });
                    if let Ok(mut tally) = tally.lock() {
                        tally.record(&job, finished);
                    }
                }
            });
        }
    });
    tally.into_inner().unwrap_or_default()
}

fn label(job: &Job) -> String {
    match &job.scope {
        Scope::One(test) => format!("{} {test}", job.binary.name),
        Scope::Shared(tests) => {
            format!("{} ({} tests in one process)", job.binary.name, tests.len())
        }
    }
}

/// What the run came to.
#[derive(Debug, Default)]
struct Tally {
    passed: usize,
    skipped: Vec<String>,
    failed: Vec<String>,
    slow: Vec<(String, Duration)>,
}

/// How much of a failed test's output is shown: its end, where the cause is.
const OUTPUT_SHOWN: usize = 64 * 1024;

impl Tally {
    fn record(&mut self, job: &Job, finished: Finished) {
        let Finished {
            outcomes,
            elapsed,
            output,
        } = finished;
        let mut show_output = false;
        for (test, outcome) in outcomes {
            let name = format!("{} {test}", job.binary.name);
            let status = match outcome {
                Outcome::Passed => {
                    self.passed += 1;
                    "PASS"
                }
                Outcome::Skipped => {
                    self.skipped.push(name.clone());
                    "SKIP"
                }
                Outcome::Failed => {
                    self.failed.push(name.clone());
                    show_output = true;
                    "FAIL"
                }
                Outcome::TimedOut => {
                    self.failed
                        .push(format!("{name} (killed after {} s)", job.limit.as_secs()));
                    show_output = true;
                    "TIMEOUT"
                }
            };
            eprintln!("{status:>8} [{:>7.3}s] {name}", elapsed.as_secs_f64());
        }
        if elapsed >= SLOW_AFTER {
            self.slow.push((label(job), elapsed));
        }
        if show_output {
            let start = output.len().saturating_sub(OUTPUT_SHOWN);
            let start = (start..output.len())
                .find(|i| output.is_char_boundary(*i))
                .unwrap_or(output.len());
            eprintln!("--- output of {} ---", label(job));
            eprintln!("{}", &output[start..]);
            eprintln!("--- end of the output of {} ---", label(job));
        }
    }

    fn close(self, elapsed: Duration) -> ExitCode {
        for (name, took) in &self.slow {
            eprintln!("    SLOW [{:>7.3}s] {name}", took.as_secs_f64());
        }
        for name in &self.failed {
            eprintln!("  FAILED {name}");
        }
        let skip_fails = under_ci() && !self.skipped.is_empty();
        if skip_fails {
            for name in &self.skipped {
                eprintln!(" SKIPPED {name}: under CI every test must run");
            }
        }
        eprintln!("Ran for {:.1} s", elapsed.as_secs_f64());
        println!(
            "summary: {} passed, {} failed, {} skipped",
            self.passed,
            self.failed.len(),
            self.skipped.len()
        );
        if self.failed.is_empty() && !skip_fails {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn test_jobs_is_taken_from_the_cargo_options() {
        let (jobs, rest) = take_jobs(strings(&["-p", "x", "--test-jobs", "3", "--locked"]))
            .expect("valid options");
        assert_eq!(jobs, 3);
        assert_eq!(rest, strings(&["-p", "x", "--locked"]));
    }

    #[test]
    fn test_jobs_takes_an_equals_sign() {
        let (jobs, _) = take_jobs(strings(&["--test-jobs=1"])).expect("valid options");
        assert_eq!(jobs, 1);
    }

    #[test]
    fn test_jobs_of_zero_is_refused() {
        assert!(take_jobs(strings(&["--test-jobs", "0"])).is_err());
    }
}
