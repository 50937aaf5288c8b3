//! Writing run files safely: whole files through a temporary file and a rename (a crash never
//! leaves half a file), and JSON-lines logs that a resumed stage can cut back.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::RunError;

/// Writes through a temporary file in the same directory, then renames it over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // Unique per writer: runs that share a directory (jobs started together) may write the
    // same file at once, and each rename must find its own temporary file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{file_name}.{}-{n}.rlp-tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Pretty JSON with a final newline.
pub(crate) fn pretty_json(value: &impl serde::Serialize) -> Result<Vec<u8>, RunError> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| RunError::Internal(format!("serialising JSON: {e}")))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// An append-only JSON-lines file.
#[derive(Debug)]
pub(crate) struct JsonLines {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl JsonLines {
    /// Opens (without creating) the log at `path`.
    pub(crate) fn open(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            file: None,
        }
    }

    /// Keeps only the rows `keep` accepts (and drops a torn last line), rewriting atomically.
    pub(crate) fn keep_while(
        &mut self,
        keep: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<(), RunError> {
        self.file = None;
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(RunError::io(&self.path, &e)),
        };
        let mut kept = String::new();
        for line in text.lines() {
            match serde_json::from_str::<serde_json::Value>(line) {
                Ok(row) if keep(&row) => {
                    kept.push_str(line);
                    kept.push('\n');
                }
                _ => {}
            }
        }
        write_atomically(&self.path, kept.as_bytes()).map_err(|e| RunError::io(&self.path, &e))
    }

    /// Appends one row and flushes it.
    pub(crate) fn push(&mut self, row: &serde_json::Value) -> Result<(), RunError> {
        if self.file.is_none() {
            self.file = Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .map_err(|e| RunError::io(&self.path, &e))?,
            );
        }
        let mut line = row.to_string();
        line.push('\n');
        if let Some(file) = self.file.as_mut() {
            file.write_all(line.as_bytes())
                .map_err(|e| RunError::io(&self.path, &e))?;
        }
        Ok(())
    }
}

/// The files a finished stage leaves, in the order they are adopted (`done.json` last: its
/// presence is what marks the stage finished).
const FINISHED_STAGE_FILES: [&str; 3] = ["model.safetensors", "metrics.jsonl", "done.json"];

/// Looks for a finished stage directory named `stage_dir` in the other run directories under
/// `out` (another pipeline whose stage has the same content, tokenizer and seed: the same key)
/// and copies its files into `into`, `done.json` last, each through a temporary file. Returns
/// the directory adopted from; `None` when no other run has it. Run directories are searched
/// in name order, so the choice is the same on every machine.
pub(crate) fn adopt_finished_stage(
    out: &Path,
    own_run: &Path,
    stage_dir: &str,
    into: &Path,
) -> Result<Option<PathBuf>, RunError> {
    let Ok(entries) = std::fs::read_dir(out) else {
        return Ok(None);
    };
    let mut runs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p != own_run)
        .collect();
    runs.sort();
    let Some(source) = runs
        .into_iter()
        .map(|run| run.join("stages").join(stage_dir))
        .find(|dir| FINISHED_STAGE_FILES.iter().all(|f| dir.join(f).is_file()))
    else {
        return Ok(None);
    };
    std::fs::create_dir_all(into).map_err(|e| RunError::io(into, &e))?;
    for file in FINISHED_STAGE_FILES {
        let (from, to) = (source.join(file), into.join(file));
        let tmp = into.join(format!(".{file}.rlp-tmp"));
        std::fs::copy(&from, &tmp).map_err(|e| RunError::io(&from, &e))?;
        std::fs::rename(&tmp, &to).map_err(|e| RunError::io(&to, &e))?;
    }
    Ok(Some(source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_of_one_file_at_once_all_succeed() {
        let dir = std::env::temp_dir().join(format!("rlp-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("shared.json");
        std::thread::scope(|s| {
            for t in 0..8 {
                let path = &path;
                s.spawn(move || {
                    // Long enough that two writers' turns overlap.
                    let padding = " ".repeat(1 << 16);
                    for i in 0..200 {
                        write_atomically(path, format!("{padding}{t} {i}").as_bytes()).unwrap();
                    }
                });
            }
        });
        let last = std::fs::read_to_string(&path).unwrap();
        assert!(last.ends_with(" 199"), "{last}");
        let leftovers = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
