//! One writer per stage directory, across processes and machines that share the run directory:
//! `stages/<dir>.lock`, created exclusively, names its owner and carries a heartbeat that the
//! owner rewrites every few seconds while it trains. Another run that needs the stage waits
//! until the lock is gone and then reuses what the owner finished; a lock whose heartbeat has
//! stopped, or whose owner ran on this machine and has ended (killed), is taken over, and the
//! stage resumes from its checkpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::files::write_atomically;

/// How often the owner rewrites its heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// A lock whose heartbeat is older than this is abandoned.
const STALE: Duration = Duration::from_secs(60);

/// How often a waiting run looks again.
const POLL: Duration = Duration::from_millis(250);

/// What a lock file says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockInfo {
    /// `host:pid` of the owner.
    pub owner: String,
    /// Unique to this acquisition.
    pub token: String,
    /// Unix seconds the owner took the lock.
    pub since_unix: u64,
    /// Unix seconds of the owner's last heartbeat.
    pub heartbeat_unix: u64,
}

/// This machine's name, as lock owners give it.
fn host() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map_or_else(|_| "localhost".to_owned(), |h| h.trim().to_owned())
}

/// Whether the owner of a lock is a process that has ended, when that can be known: it ran on
/// this machine (with `/proc`) and its pid is gone. A killed owner's heartbeat still looks
/// fresh for up to a minute; this tells sooner.
#[must_use]
pub fn owner_gone(info: &LockInfo) -> bool {
    let Some((host_name, pid)) = info.owner.rsplit_once(':') else {
        return false;
    };
    host_name == host()
        && Path::new("/proc/self").exists()
        && !Path::new("/proc").join(pid).exists()
}

/// The lock file of a stage directory.
#[must_use]
pub fn lock_path(stage_dir: &Path) -> PathBuf {
    let mut name = stage_dir.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    stage_dir.with_file_name(name)
}

/// Reads a lock file; none when it is gone or not (yet) a whole lock.
#[must_use]
pub fn read_lock(path: &Path) -> Option<LockInfo> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// A held lock; dropping it stops the heartbeat and removes the file.
#[derive(Debug)]
pub struct StageLock {
    path: PathBuf,
    token: String,
    stop: Arc<AtomicBool>,
    beat: Option<JoinHandle<()>>,
}

/// How acquiring went, for the run's notes.
#[derive(Debug)]
pub enum Acquired {
    /// Free at once.
    Free(StageLock),
    /// After waiting for `owner`.
    AfterWaiting(StageLock, String),
    /// Taken over from `owner`, whose heartbeat had stopped.
    TakenOver(StageLock, String),
}

impl StageLock {
    /// Takes the lock of `stage_dir`, waiting while another live owner holds it and taking it
    /// over when its owner's heartbeat has stopped.
    ///
    /// # Errors
    /// An I/O error other than the lock being held.
    pub fn acquire(stage_dir: &Path) -> std::io::Result<Acquired> {
        let path = lock_path(stage_dir);
        let owner = format!("{}:{}", host(), std::process::id());
        let token = format!(
            "{owner}:{}:{}",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
            std::thread::current().name().unwrap_or("main")
        );
        let mut waited_for: Option<String> = None;
        let mut took_over: Option<String> = None;
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => {
                    let info = LockInfo {
                        owner: owner.clone(),
                        token: token.clone(),
                        since_unix: super::unix_now(),
                        heartbeat_unix: super::unix_now(),
                    };
                    write_lock(&path, &info)?;
                    let lock = Self::start(path, info);
                    return Ok(match (took_over, waited_for) {
                        (Some(old), _) => Acquired::TakenOver(lock, old),
                        (None, Some(old)) => Acquired::AfterWaiting(lock, old),
                        (None, None) => Acquired::Free(lock),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            // Held: by whom, and is it alive? A file just created and not yet written reads
            // as nothing; its age decides.
            let held = read_lock(&path);
            let age = match &held {
                Some(info) => super::unix_now().saturating_sub(info.heartbeat_unix),
                None => modified_age(&path).unwrap_or(0),
            };
            if age > STALE.as_secs() || held.as_ref().is_some_and(owner_gone) {
                if take_over(&path, held.as_ref())? {
                    took_over = Some(held.map_or_else(|| "an unknown run".to_owned(), |i| i.owner));
                }
                continue;
            }
            if waited_for.is_none() {
                waited_for = Some(held.map_or_else(|| "another run".to_owned(), |i| i.owner));
            }
            std::thread::sleep(POLL);
        }
    }

    fn start(path: PathBuf, info: LockInfo) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let beat = {
            let (path, stop, mut info) = (path.clone(), Arc::clone(&stop), info.clone());
            std::thread::spawn(move || {
                let mut last = std::time::Instant::now();
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(POLL);
                    if last.elapsed() < HEARTBEAT {
                        continue;
                    }
                    last = std::time::Instant::now();
                    // Never write over a lock that is no longer ours.
                    if read_lock(&path).is_none_or(|held| held.token != info.token) {
                        return;
                    }
                    info.heartbeat_unix = super::unix_now();
                    let _ = write_lock(&path, &info);
                }
            })
        };
        Self {
            path,
            token: info.token,
            stop,
            beat: Some(beat),
        }
    }
}

impl Drop for StageLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(beat) = self.beat.take() {
            let _ = beat.join();
        }
        if read_lock(&self.path).is_some_and(|held| held.token == self.token) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn write_lock(path: &Path, info: &LockInfo) -> std::io::Result<()> {
    let text = serde_json::to_string(info).map_err(std::io::Error::other)?;
    write_atomically(path, text.as_bytes())
}

fn modified_age(path: &Path) -> Option<u64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(SystemTime::now().duration_since(modified).ok()?.as_secs())
}

/// Removes an abandoned lock, if it is still the one that was seen: one run at a time does this,
/// under `<lock>.takeover` (itself abandoned after [`STALE`]). Whether this run removed it.
fn take_over(path: &Path, seen: Option<&LockInfo>) -> std::io::Result<bool> {
    let mut guard = path.as_os_str().to_owned();
    guard.push(".takeover");
    let guard = PathBuf::from(guard);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&guard)
    {
        Ok(_) => {
            let still = read_lock(path);
            let removed = if still.as_ref() == seen {
                std::fs::remove_file(path).is_ok()
            } else {
                false
            };
            let _ = std::fs::remove_file(&guard);
            Ok(removed)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if modified_age(&guard).is_some_and(|age| age > STALE.as_secs()) {
                let _ = std::fs::remove_file(&guard);
            }
            std::thread::sleep(POLL);
            Ok(false)
        }
        Err(e) => Err(e),
    }
}
