//! What the person sees while they wait, on stderr: a spinner on a terminal (the login's
//! "waiting for approval", or a call that keeps them waiting), one plain line otherwise.
//! Every other stderr line printed meanwhile goes through [`Progress::println`], so the
//! spinner never garbles it, and [`Progress::clear`] leaves no spinner behind. Lines are
//! written through [`crate::output::write_err`], which ends the process quietly when
//! stderr is a pipe its reader closed; the spinner itself runs only on a terminal.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// The stderr status line.
#[derive(Debug)]
pub struct Progress {
    /// Spinners only on a terminal and without `--quiet`.
    animate: bool,
    quiet: bool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    bar: Option<ProgressBar>,
    /// The long-running message (the login's), shown again once a slow call is answered.
    base: Option<String>,
}

impl Progress {
    /// A status line; `quiet` shows nothing but what [`Progress::println`] must print.
    pub fn new(quiet: bool) -> Self {
        Self {
            animate: !quiet && std::io::stderr().is_terminal(),
            quiet,
            state: Mutex::new(State::default()),
        }
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> Option<T> {
        self.state.lock().ok().map(|mut state| f(&mut state))
    }

    fn spin(state: &mut State, message: &str) {
        let bar = state.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        bar.set_message(message.to_owned());
    }

    /// Shows `message` until [`Progress::clear`].
    pub fn start(&self, message: &str) {
        if !self.animate {
            return;
        }
        self.with_state(|state| {
            state.base = Some(message.to_owned());
            Self::spin(state, message);
        });
    }

    /// A call is keeping the person waiting: say for what.
    pub fn waiting(&self, message: &str) {
        if self.quiet {
            return;
        }
        if !self.animate {
            crate::output::write_err(&format!("{message}\n"));
            return;
        }
        self.with_state(|state| Self::spin(state, message));
    }

    /// The slow call was answered: back to the long-running message, or nothing.
    pub fn answered(&self) {
        if !self.animate {
            return;
        }
        self.with_state(|state| match (&state.base, &state.bar) {
            (Some(base), Some(bar)) => bar.set_message(base.clone()),
            (None, Some(_)) => {
                if let Some(bar) = state.bar.take() {
                    bar.finish_and_clear();
                }
            }
            _ => {}
        });
    }

    /// Removes the spinner, leaving the line empty.
    pub fn clear(&self) {
        self.with_state(|state| {
            state.base = None;
            if let Some(bar) = state.bar.take() {
                bar.finish_and_clear();
            }
        });
    }

    /// Prints `line` on stderr without garbling a spinner.
    pub fn println(&self, line: &str) {
        let printed = self.with_state(|state| match &state.bar {
            Some(bar) => {
                bar.suspend(|| crate::output::write_err(&format!("{line}\n")));
                true
            }
            None => false,
        });
        if printed != Some(true) {
            crate::output::write_err(&format!("{line}\n"));
        }
    }
}
