//! Files fulcrum re-reads when they change on disk (TLS certificates, keys
//! and CA bundles; the config with `watch_config`). Polled by the control
//! thread by modification time: no inotify dependency, and it also sees
//! files replaced by rename, as Kubernetes does with secrets and configmaps.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

#[derive(Debug)]
pub struct WatchedFiles {
    files: Vec<PathBuf>,
    /// Modification times when the files were last read.
    seen: Mutex<Vec<Option<SystemTime>>>,
}

impl WatchedFiles {
    pub fn new(files: Vec<PathBuf>) -> Self {
        let seen = Mutex::new(modified(&files));
        Self { files, seen }
    }

    /// Records the files as read now.
    pub fn mark(&self) {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = modified(&self.files);
    }

    /// Whether a file changed (or appeared, or vanished) since the last read.
    pub fn changed(&self) -> bool {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) != modified(&self.files)
    }
}

fn modified(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}
