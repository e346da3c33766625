//! What the person sees while they wait, on stderr: a spinner on a terminal (the login's
//! "waiting for approval", or a call that keeps them waiting), one plain line otherwise.
//! Every other stderr line printed meanwhile goes through [`Progress::println`] and every
//! question through [`Progress::ask`], so the spinner never garbles them, and
//! [`Progress::clear`] and [`Progress::cancelled`] leave no spinner behind. Lines are
//! written through [`crate::output::write_err`], which ends the process quietly when
//! stderr is a pipe its reader closed; the spinner itself runs only on a terminal.
//!
//! The spinner is drawn here rather than by indicatif, which pads every frame to the
//! terminal's full width: the terminal then wraps the `^C` it echoes on Ctrl-C to a new
//! line, and clearing the spinner's line left the spinner on the screen. Here a frame is
//! always at least three columns short of the width, so `^C` lands on the spinner's own
//! line, and one "clear the line" removes both.

use std::io::IsTerminal;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use unicode_width::UnicodeWidthStr;

/// The spinner's frames, one every [`TICK`].
const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const TICK: Duration = Duration::from_millis(100);
/// Columns a frame leaves free at the end of the line: room for the echoed `^C`, and the
/// cursor never in the last column, where terminals wrap the next character.
const MARGIN: usize = 3;
/// Back to the line's start and erase it.
const ERASE_LINE: &str = "\r\x1b[2K";

/// The stderr status line.
#[derive(Debug)]
pub struct Progress {
    /// Spinners only on a terminal and without `--quiet`.
    animate: bool,
    quiet: bool,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the ticker early when the spinner starts.
    wake: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// What the spinner says; no spinner when `None`.
    message: Option<String>,
    /// The long-running message (the login's), shown again once a slow call is answered.
    base: Option<String>,
    /// A frame is on the screen, on the cursor's line.
    drawn: bool,
    frame: usize,
    /// A question is on the cursor's line, waiting for its answer.
    asking: bool,
    /// The thread that draws the frames has started.
    ticking: bool,
}

impl State {
    fn draw(&mut self) {
        let Some(message) = &self.message else {
            return;
        };
        let width = terminal_size::terminal_size_of(std::io::stderr())
            .map_or(80, |(w, _)| usize::from(w.0));
        let frame = FRAMES[self.frame % FRAMES.len()];
        let room = width.saturating_sub(MARGIN + frame.width() + 1);
        let line = format!("{frame} {}", crate::output::cut(message, room));
        crate::output::write_err(&format!("{ERASE_LINE}{line}"));
        self.drawn = true;
        self.frame = self.frame.wrapping_add(1);
    }

    fn erase(&mut self) {
        if self.drawn {
            crate::output::write_err(ERASE_LINE);
            self.drawn = false;
        }
    }
}

impl Progress {
    /// A status line; `quiet` shows nothing but what [`Progress::println`] must print.
    pub fn new(quiet: bool) -> Self {
        Self {
            animate: !quiet && std::io::stderr().is_terminal(),
            quiet,
            shared: Arc::new(Shared::default()),
        }
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> Option<T> {
        self.shared.state.lock().ok().map(|mut state| f(&mut state))
    }

    /// Shows `message` as the spinner's, starting the thread that turns it.
    fn spin(&self, state: &mut State, message: &str) {
        state.message = Some(message.to_owned());
        state.draw();
        if !state.ticking {
            let shared = Arc::clone(&self.shared);
            // Without a thread the spinner stands still; the message is still there.
            state.ticking = std::thread::Builder::new()
                .name("spinner".into())
                .spawn(move || tick(&shared))
                .is_ok();
        }
        self.shared.wake.notify_all();
    }

    /// Shows `message` until [`Progress::clear`].
    pub fn start(&self, message: &str) {
        if !self.animate {
            return;
        }
        self.with_state(|state| {
            state.base = Some(message.to_owned());
            self.spin(state, message);
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
        self.with_state(|state| self.spin(state, message));
    }

    /// The slow call was answered: back to the long-running message, or nothing.
    pub fn answered(&self) {
        if !self.animate {
            return;
        }
        self.with_state(|state| {
            state.message = state.base.clone();
            if state.message.is_some() {
                state.draw();
            } else {
                state.erase();
            }
        });
    }

    /// Removes the spinner, leaving the line empty.
    pub fn clear(&self) {
        self.with_state(|state| {
            state.base = None;
            state.message = None;
            state.erase();
        });
    }

    /// Prints `line` on stderr without garbling a spinner.
    pub fn println(&self, line: &str) {
        let printed = self.with_state(|state| {
            state.erase();
            crate::output::write_err(&format!("{line}\n"));
            state.asking = false;
            state.draw();
        });
        if printed.is_none() {
            crate::output::write_err(&format!("{line}\n"));
        }
    }

    /// Puts `question` on stderr, the cursor after it for the answer.
    pub fn ask(&self, question: &str) {
        self.with_state(|state| {
            state.message = None;
            state.erase();
            crate::output::write_err(question);
            state.asking = true;
        });
    }

    /// The person answered the question (their Enter ended its line).
    pub fn asked(&self) {
        self.with_state(|state| state.asking = false);
    }

    /// Ctrl-C was pressed, and the terminal echoed `^C` where the cursor was: leave the
    /// cursor at the start of an empty line for the message that follows. A spinner's
    /// line (with its `^C`) is erased, as is a line holding only `^C`; a question and
    /// its `^C` stay, as a shell leaves them, and the message goes below.
    pub fn cancelled(&self) {
        if !std::io::stderr().is_terminal() {
            return;
        }
        self.with_state(|state| {
            state.base = None;
            state.message = None;
            if state.asking {
                crate::output::write_err("\n");
                state.asking = false;
            } else {
                crate::output::write_err(ERASE_LINE);
                state.drawn = false;
            }
        });
    }
}

/// Turns the spinner every [`TICK`] while there is one; sleeps otherwise.
fn tick(shared: &Shared) {
    let Ok(mut state) = shared.state.lock() else {
        return;
    };
    loop {
        let wait = if state.message.is_some() {
            TICK
        } else {
            Duration::from_secs(3600)
        };
        state = match shared.wake.wait_timeout(state, wait) {
            Ok((state, _)) => state,
            Err(_) => return,
        };
        state.draw();
    }
}
