//! A small file system of the test's own (a size-limited tmpfs), to fill a disk on purpose.
//! Mounting needs root; [`SmallFs::mount`] says why it cannot when it cannot.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{COMMAND_TIMEOUT, run_with_deadline};

/// A mounted tmpfs, unmounted when dropped.
#[derive(Debug)]
pub struct SmallFs {
    dir: TempDir,
}

impl SmallFs {
    /// Mounts a tmpfs of `kib` KiB, owned by `owner` (a user name) when given.
    pub fn mount(kib: u64, owner: Option<&str>) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut options = format!("size={kib}k,mode=0755");
        if let Some(owner) = owner {
            let uid = id_of(owner, "-u")?;
            let gid = id_of(owner, "-g")?;
            options.push_str(&format!(",uid={uid},gid={gid}"));
        }
        let mounted = run_with_deadline(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &options, "tmpfs"])
                .arg(dir.path()),
            Duration::from_secs(10),
        );
        if !mounted.success {
            return Err(format!(
                "cannot mount a tmpfs (needs root): {}",
                mounted.output
            ));
        }
        Ok(Self { dir })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn id_of(user: &str, flag: &str) -> Result<String, String> {
    let id = run_with_deadline(Command::new("id").args([flag, user]), COMMAND_TIMEOUT);
    if id.success {
        Ok(id.output.trim().to_owned())
    } else {
        Err(id.output)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        // Lazy: a process that still holds a file there must not make the test hang.
        let _ = run_with_deadline(
            Command::new("umount").arg("-l").arg(self.dir.path()),
            Duration::from_secs(10),
        );
    }
}
