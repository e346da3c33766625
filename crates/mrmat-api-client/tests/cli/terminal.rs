//! A real terminal for the client: a shell in a tmux pane of a given size, driven by keys,
//! read back as the screen a person sees. Each terminal is a tmux server of its own (its
//! socket in a temporary directory), killed when the test lets go of it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::Home;

/// The longest any screen is waited for.
const SCREEN_TIMEOUT: Duration = Duration::from_secs(15);

/// A shell in a tmux pane.
pub struct Terminal {
    dir: tempfile::TempDir,
}

impl Terminal {
    /// `shell` (`bash`, `zsh` or `fish`, without its start-up files) in a `width` x 30
    /// pane, with `home`'s directories, the client binary's directory first on PATH, and
    /// `env` besides. The prompt is `$ `.
    pub fn start(shell: &str, width: u16, home: &Home, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let binary = Path::new(env!("CARGO_BIN_EXE_mrmat-api-client"));
        let path = format!(
            "{}:{}",
            binary.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut vars: Vec<(String, String)> = home
            .environment()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.display().to_string()))
            .collect();
        vars.push(("PATH".into(), path));
        vars.push(("TERM".into(), "xterm".into()));
        vars.push(("PS1".into(), "$ ".into()));
        vars.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let shell_command = match shell {
            "bash" => "bash --norc --noprofile",
            "zsh" => "zsh -f",
            "fish" => "fish --no-config",
            other => panic!("no such shell here: {other}"),
        };
        // `env -i`: none of the test's variables (MRMAT_API_*, COLUMNS) reach the client.
        let mut command = String::from("env -i");
        for (key, value) in &vars {
            command.push_str(&format!(" {key}={}", quote(value)));
        }
        command.push(' ');
        command.push_str(shell_command);
        let terminal = Self { dir };
        terminal.tmux(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            &width.to_string(),
            "-y",
            "30",
            &command,
        ]);
        terminal.tmux(&["set-option", "-g", "status", "off"]);
        terminal
    }

    fn tmux(&self, args: &[&str]) -> String {
        let socket = self.dir.path().join("tmux.sock");
        let output = Command::new("tmux")
            .arg("-S")
            .arg(&socket)
            .args(args)
            .output()
            .expect("run tmux");
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Types `text` as it is.
    pub fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-l", text]);
    }

    /// Presses keys by tmux's names: `Enter`, `Tab`, `C-c`.
    pub fn press(&self, key: &str) {
        self.tmux(&["send-keys", key]);
    }

    /// Types `line` and presses Enter.
    pub fn run(&self, line: &str) {
        self.type_text(line);
        self.press("Enter");
    }

    /// The screen, without trailing blank lines.
    pub fn screen(&self) -> String {
        let screen = self.tmux(&["capture-pane", "-p"]);
        let mut lines: Vec<&str> = screen.lines().map(str::trim_end).collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        lines.join("\n")
    }

    /// Waits until the screen satisfies `check`, polling every 20 ms; the screen and how
    /// long it took. Fails the test after [`SCREEN_TIMEOUT`].
    pub async fn wait_for(&self, what: &str, check: impl Fn(&str) -> bool) -> (String, Duration) {
        let started = Instant::now();
        loop {
            let screen = self.screen();
            if check(&screen) {
                return (screen, started.elapsed());
            }
            assert!(
                started.elapsed() < SCREEN_TIMEOUT,
                "{what}: not on the screen within {SCREEN_TIMEOUT:?}:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let socket = self.dir.path().join("tmux.sock");
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&socket)
            .arg("kill-server")
            .output();
    }
}

/// `value` as one word for `sh`.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}
