//! Ending a test together with every process it started (the providers, servers, nginx,
//! Keycloak's JVM). A test's processes stay in the terminal's process group, so Ctrl-C
//! reaches them all as it does under `cargo test`; the tree is found in /proc instead.

use std::collections::HashMap;
use std::process::{Command, Stdio};

/// The pids of `root`'s descendants, children before their children.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            if let Some(ppid) = parent_pid(&stat) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut found = Vec::new();
    let mut next = vec![root];
    while let Some(pid) = next.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            found.push(child);
            next.push(child);
        }
    }
    found
}

/// The parent pid in a `/proc/PID/stat` line: the field after the state, which follows
/// the command name in parentheses (a name may itself hold spaces and parentheses).
fn parent_pid(stat: &str) -> Option<u32> {
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// Sends SIGKILL to each of `pids`. Without libc: the workspace forbids `unsafe`, and
/// `kill(1)` is on every machine this runs on.
pub fn kill(pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg("-KILL")
        .args(pids.iter().map(u32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_pid_is_read_past_a_name_with_spaces_and_parentheses() {
        assert_eq!(parent_pid("4242 (a (b) c) S 17 4242 4242 0 -1"), Some(17));
    }

    #[test]
    fn a_child_process_is_a_descendant() {
        let mut child = Command::new("sleep").arg("30").spawn().expect("sleep");
        let me = std::process::id();
        assert!(descendants(me).contains(&child.id()));
        kill(&[child.id()]);
        let status = child.wait().expect("wait");
        assert!(!status.success());
    }
}
