//! The sticker catalogue (SPEC.md §5.11.3): the built-in stickers
//! (`builtin.rs`), overridden and extended by the `*.toml` files of the
//! directory `stickers_dir` names, read once at start-up.
//!
//! A file `<id>.toml` holds one sticker:
//!
//! ```toml
//! name = "Table flip"
//! art = '''
//! (/o_o)/  ~  |___|
//! '''
//! ```
//!
//! Its file name gives the id (SPEC's id rule: 1-32 of `a-z 0-9 _ -`); a
//! file whose id is built in replaces that sticker, any other adds one.
//! Other files are ignored. A file that breaks a rule stops start-up with
//! its path, rather than serve a catalogue that differs from the one the
//! operator wrote.

mod builtin;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use confab_protocol::rich::is_sticker_id;
use confab_protocol::Sticker;
use serde::Deserialize;

/// The most stickers a catalogue may hold (STICKER_LIST stays small).
pub const MAX_STICKERS: usize = 256;
/// The longest sticker name, in characters.
pub const MAX_NAME_CHARS: usize = 32;
/// The largest art, in bytes.
pub const MAX_ART_BYTES: usize = 2048;

/// Why the catalogue could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("reading the sticker directory {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sticker file {}: {why}", path.display())]
    Invalid { path: PathBuf, why: String },
    #[error("more than {MAX_STICKERS} stickers")]
    TooMany,
}

/// One sticker file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StickerFile {
    name: String,
    art: String,
}

/// The stickers a server offers, by id.
#[derive(Debug, Clone)]
pub struct Catalogue {
    by_id: BTreeMap<String, Sticker>,
}

impl Catalogue {
    /// The built-in stickers only.
    pub fn builtin() -> Catalogue {
        let by_id = builtin::STICKERS
            .iter()
            .map(|&(id, name, art)| {
                let s = Sticker {
                    id: id.into(),
                    name: name.into(),
                    art: art.into(),
                };
                (s.id.clone(), s)
            })
            .collect();
        Catalogue { by_id }
    }

    /// The built-in stickers, overridden and extended by `dir`'s files.
    pub fn load(dir: Option<&Path>) -> Result<Catalogue, CatalogueError> {
        let mut catalogue = Catalogue::builtin();
        let Some(dir) = dir else {
            return Ok(catalogue);
        };
        let io = |source| CatalogueError::Io {
            path: dir.to_owned(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                paths.push(path);
            }
        }
        paths.sort();
        for path in paths {
            let sticker = read_file(&path)?;
            catalogue.by_id.insert(sticker.id.clone(), sticker);
        }
        if catalogue.by_id.len() > MAX_STICKERS {
            return Err(CatalogueError::TooMany);
        }
        Ok(catalogue)
    }

    /// The sticker with this id.
    pub fn get(&self, id: &str) -> Option<&Sticker> {
        self.by_id.get(id)
    }

    /// Every sticker, in id order.
    pub fn list(&self) -> Vec<Sticker> {
        self.by_id.values().cloned().collect()
    }

    /// How many stickers there are.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }
}

/// Reads and checks one sticker file.
fn read_file(path: &Path) -> Result<Sticker, CatalogueError> {
    let invalid = |why: String| CatalogueError::Invalid {
        path: path.to_owned(),
        why,
    };
    let id = path
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|id| is_sticker_id(id))
        .ok_or_else(|| {
            invalid("the file name must be <id>.toml, the id 1-32 of a-z 0-9 _ -".into())
        })?
        .to_owned();
    let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
    let file: StickerFile = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let name = file.name.trim().to_owned();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(invalid(format!(
            "name must be 1-{MAX_NAME_CHARS} characters without control characters"
        )));
    }
    // A TOML multi-line string starts after its first line break and ends
    // with one: the art is what lies between.
    let art = file.art.trim_end_matches('\n').to_owned();
    if art.trim().is_empty()
        || art.len() > MAX_ART_BYTES
        || art.chars().any(|c| c.is_control() && c != '\n')
    {
        return Err(invalid(format!(
            "art must be 1-{MAX_ART_BYTES} bytes, lines separated by \\n, without other control characters"
        )));
    }
    Ok(Sticker { id, name, art })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalogue_has_twenty_well_formed_ascii_stickers_in_id_order() {
        let c = Catalogue::builtin();
        assert!(c.len() >= 20, "{} stickers", c.len());
        let ids: Vec<&str> = builtin::STICKERS.iter().map(|s| s.0).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(ids, sorted, "built-in ids are sorted and unique");
        for s in c.list() {
            assert!(is_sticker_id(&s.id), "{}", s.id);
            assert!(!s.name.is_empty() && s.name.chars().count() <= MAX_NAME_CHARS);
            assert!(s.art.len() <= MAX_ART_BYTES, "{}", s.id);
            assert!(
                s.art
                    .bytes()
                    .all(|b| b == b'\n' || (0x20..0x7f).contains(&b)),
                "{} is printable ASCII",
                s.id
            );
            assert!(
                s.art.lines().all(|l| !l.ends_with(' ')),
                "{} has trailing spaces",
                s.id
            );
        }
    }

    #[test]
    fn a_directory_replaces_and_adds_stickers() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("shrug.toml"),
            "name = \"Big shrug\"\nart = '''\n\\_(O_O)_/\n'''\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("duck.toml"),
            "name = \"Duck\"\nart = '''\n  __\n<(o )___\n ( ._> /\n  `---'\n'''\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("README.md"), "ignored").expect("write");
        let c = Catalogue::load(Some(dir.path())).expect("loads");
        assert_eq!(c.len(), Catalogue::builtin().len() + 1);
        let shrug = c.get("shrug").expect("shrug");
        assert_eq!(
            (shrug.name.as_str(), shrug.art.as_str()),
            ("Big shrug", "\\_(O_O)_/")
        );
        assert_eq!(
            c.get("duck").expect("duck").art,
            "  __\n<(o )___\n ( ._> /\n  `---'"
        );
    }

    #[test]
    fn a_bad_file_stops_loading_with_its_path() {
        for (file, text) in [
            ("Bad Name.toml", "name = \"x\"\nart = \"x\""),
            ("empty.toml", "name = \"x\"\nart = \"  \""),
            ("nameless.toml", "art = \"x\""),
            ("typo.toml", "name = \"x\"\nart = \"x\"\ncolour = 1"),
            ("control.toml", "name = \"x\"\nart = \"a\\u001b[31m\""),
        ] {
            let dir = tempfile::tempdir().expect("temp dir");
            std::fs::write(dir.path().join(file), text).expect("write");
            let err = Catalogue::load(Some(dir.path())).expect_err(file);
            assert!(err.to_string().contains(file), "{file}: {err}");
        }
        let missing = Catalogue::load(Some(Path::new("/nonexistent/stickers")));
        assert!(matches!(missing, Err(CatalogueError::Io { .. })));
    }
}
