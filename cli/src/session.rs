//! The stored session: the token `confab login` got, kept in the user's
//! config directory so that later commands need no password.
//!
//! `$XDG_CONFIG_HOME/confab/session.json` (or `~/.config/confab/…`),
//! written with mode 0600 in a directory of mode 0700: the token is as
//! good as the password until it expires or `confab logout` revokes it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What is stored: the server it is for, who, and the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub url: String,
    pub username: String,
    pub token: String,
}

impl std::fmt::Debug for Stored {
    /// Never shows the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stored")
            .field("url", &self.url)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The directory for confab's files: `$XDG_CONFIG_HOME/confab`, else
/// `$HOME/.config/confab`.
pub fn config_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if !dir.is_empty() && Path::new(&dir).is_absolute() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".config"),
    };
    Some(base.join("confab"))
}

/// Where the session is kept.
pub fn session_path() -> Option<PathBuf> {
    config_dir().map(|d| d.join("session.json"))
}

/// The stored session, if there is a readable one.
pub fn load() -> Option<Stored> {
    let text = fs::read_to_string(session_path()?).ok()?;
    serde_json::from_str(&text).ok()
}

/// Stores `session`, replacing any other: written to a new file of mode
/// 0600 and renamed over the old, so it is never readable by others nor
/// half written.
pub fn save(session: &Stored) -> std::io::Result<PathBuf> {
    let path = session_path().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "neither XDG_CONFIG_HOME nor HOME is set",
        )
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(".session.json.tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(serde_json::to_string_pretty(session)?.as_bytes())?;
    file.sync_all()?;
    // The mode given to open is masked by the umask; 0600 is narrower
    // than any umask leaves, but say it outright.
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
    fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Removes the stored session; `Ok(false)` when there was none.
pub fn remove() -> std::io::Result<bool> {
    let Some(path) = session_path() else {
        return Ok(false);
    };
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}
