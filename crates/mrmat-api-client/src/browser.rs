//! Opening the login page in the person's browser: `BROWSER` when set (as git, gh and
//! Python's webbrowser read it), else the desktop's opener where there is a desktop. A
//! remote shell has none, and `login --no-browser` says not to try.

use std::process::{Command, Stdio};

/// The command that opens a page here, as words; `None` where there is no browser to
/// open (no `BROWSER`, no desktop).
pub fn command() -> Option<Vec<String>> {
    if let Some(browser) = std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.trim().is_empty())
    {
        // BROWSER may list several, separated by ':'; the first is tried.
        let first = browser.split(':').next().unwrap_or_default();
        return Some(first.split_whitespace().map(str::to_owned).collect());
    }
    if cfg!(target_os = "macos") {
        return Some(vec!["open".into()]);
    }
    let desktop = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()));
    desktop.then(|| vec!["xdg-open".into()])
}

/// Starts `command` on `url` and leaves it running: a browser outlives the login. `%s`
/// in the command is replaced by the URL, else the URL is its last argument.
pub fn open(command: &[String], url: &str) -> std::io::Result<()> {
    let Some((program, args)) = command.split_first() else {
        return Err(std::io::Error::other("an empty BROWSER"));
    };
    let mut args: Vec<String> = args.iter().map(|a| a.replace("%s", url)).collect();
    if !command.iter().any(|a| a.contains("%s")) {
        args.push(url.to_owned());
    }
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(|_| ())
}
