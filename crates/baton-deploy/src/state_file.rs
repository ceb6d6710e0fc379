//! How baton writes and reads its own small files, in its state directory and inside release
//! directories, so that neither a crash nor a hostile checkout can make it lose state or write
//! somewhere else:
//!
//! - [`write_atomically`]: temp file, fsync, rename, fsync of the directory. Readers see the old
//!   or the new content, never a torn or empty file, even after a power cut.
//! - [`load_or_quarantine`]: a file that does not parse (empty after a crash, garbage) is moved
//!   aside to `NAME.corrupt-<UTC>` and logged at warn, and the caller starts afresh: a bad
//!   state file must never stop baton from starting, nor be silently kept.
//! - [`create_in_release`]: files baton writes inside a checkout never follow a symlink the
//!   repository committed under that name.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::error::Error;

/// Creates `dir/name` as a new regular file, replacing whatever the checkout put there (a
/// symlink is unlinked, not followed). `O_EXCL | O_NOFOLLOW` make the open itself refuse a
/// symlink that a concurrent build might recreate between the unlink and the open.
pub fn create_in_release(dir: &Path, name: &str) -> Result<File, Error> {
    let path = dir.join(name);
    remove_entry(&path)?;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&path)
        .map_err(Error::io("create", &path))
}

/// Reads `path` unless it is a symlink (or missing): `None` then.
pub(crate) fn read_no_follow(path: &Path) -> Option<String> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    Some(text)
}

/// Removes a file, symlink or directory tree at `path` (never following a symlink); a missing
/// entry is fine.
pub(crate) fn remove_entry(path: &Path) -> Result<(), Error> {
    let result = match fs::symlink_metadata(path) {
        Err(_) => return Ok(()),
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    };
    result.map_err(Error::io("remove", path))
}

/// Writes `path` via `path.tmp` + fsync + rename + fsync of the directory, so readers see the
/// old or the new content. The temp file is created afresh (`O_EXCL | O_NOFOLLOW`).
pub fn write_atomically(path: &Path, content: &[u8]) -> Result<(), Error> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    remove_entry(&tmp)?;
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&tmp)?;
        file.write_all(content)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io("write", path)(e));
    }
    if let Some(parent) = path.parent() {
        sync_dir(parent);
    }
    Ok(())
}

/// Best effort: make a rename durable across a power cut.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Parses the JSON file at `path`; a missing file is `T::default()`. A file that does not parse
/// is renamed to `NAME.corrupt-<UTC>` (logged at warn) and `T::default()` returned, so the next
/// write starts a valid file. Only a file that cannot be read or moved aside is an error.
pub fn load_or_quarantine<T: DeserializeOwned + Default>(path: &Path) -> Result<T, Error> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(T::default()),
        Err(e) => return Err(Error::io("read", path)(e)),
    };
    let why = match serde_json::from_slice(&bytes) {
        Ok(value) => return Ok(value),
        Err(_) if bytes.is_empty() => "empty".to_string(),
        Err(e) => e.to_string(),
    };
    let aside = quarantine(path)?;
    tracing::warn!(
        "state file {} is corrupt ({why}): moved it to {} and started a new one",
        path.display(),
        aside.display()
    );
    Ok(T::default())
}

/// Renames `path` to `path.corrupt-<UTC>` (with `-N` if that exists) and returns the new name.
fn quarantine(path: &Path) -> Result<PathBuf, Error> {
    let stamp = baton_clock::Utc::now().compact();
    for n in 1..1000 {
        let mut name: OsString = path.as_os_str().to_owned();
        name.push(format!(".corrupt-{stamp}"));
        if n > 1 {
            name.push(format!("-{n}"));
        }
        let aside = PathBuf::from(name);
        if fs::symlink_metadata(&aside).is_ok() {
            continue;
        }
        fs::rename(path, &aside).map_err(Error::io("move aside", path))?;
        sync_dir(path.parent().unwrap_or(Path::new(".")));
        return Ok(aside);
    }
    Err(Error::State(format!(
        "too many corrupt copies of {} lie beside it: remove some",
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        crate::test_dir::scratch(&format!("state-{tag}"))
    }

    #[test]
    fn corrupt_files_are_moved_aside() {
        let dir = scratch("corrupt");
        let path = dir.join("s.json");
        for content in [&b""[..], b"{not json", b"\xff\xfe"] {
            fs::write(&path, content).unwrap();
            let v: Vec<u32> = load_or_quarantine(&path).unwrap();
            assert!(v.is_empty());
            assert!(!path.exists());
        }
        let aside: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(aside.len(), 3, "{aside:?}");
        assert!(aside.iter().all(|n| n.starts_with("s.json.corrupt-")));
        write_atomically(&path, b"[1,2]").unwrap();
        assert_eq!(load_or_quarantine::<Vec<u32>>(&path).unwrap(), vec![1, 2]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn release_files_never_follow_symlinks() {
        let dir = scratch("nofollow");
        let outside = dir.join("outside");
        fs::write(&outside, "precious").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("build.log")).unwrap();
        let mut f = create_in_release(&dir, "build.log").unwrap();
        f.write_all(b"log").unwrap();
        assert_eq!(fs::read_to_string(&outside).unwrap(), "precious");
        assert_eq!(fs::read_to_string(dir.join("build.log")).unwrap(), "log");
        std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();
        assert_eq!(read_no_follow(&dir.join("link")), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
