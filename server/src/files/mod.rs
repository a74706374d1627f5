//! Uploaded files (SPEC.md §13): the bytes on disk, stored once per
//! content hash, and the rules an upload passes before anything is kept.
//!
//! **Layout.** `DATA_DIR/files/ab/cd/<sha256 hex>` holds the bytes of
//! every upload whose SHA-256 starts `abcd…`, however many uploads (rows
//! of the store's `files` table) name them. An upload streams into
//! `DATA_DIR/files/tmp/` while it is hashed and checked; only an upload
//! that passed is moved into place (a rename, so a reader never sees half
//! a file), and a refused one leaves nothing behind.
//!
//! **Memory.** An upload is never held in memory: each chunk the
//! connection delivers is hashed and written, and only the first
//! [`HEAD_BYTES`] are kept to tell the type and an image's size. A body
//! whose `Content-Length` is over the limit is refused before it is read;
//! a chunked one is cut off at the limit.
//!
//! **Bytes and rows take turns.** An upload moves its bytes into place and
//! records its row under [`Files::blobs`]; housekeeping finds the hashes
//! only deleted rows use and removes their bytes under the same lock, so
//! an upload of the same bytes at that moment cannot lose them.

pub mod attach;
pub mod link;
pub mod name;
pub mod sniff;

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use confab_protocol::{Millis, RoomId, UserId};
use confab_store::{NewFile, Store, StoreError};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

pub use link::{LinkKey, LinkRefused};
pub use sniff::Kind;

/// How much of an upload's start is kept to sniff its type and read an
/// image's header (a JPEG's frame header may follow large metadata).
pub const HEAD_BYTES: usize = 256 * 1024;

/// Why an upload is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over `max_upload_bytes` (by its Content-Length, or while streaming).
    TooLarge,
    /// No bytes.
    Empty,
    /// The declared type is not on the allowlist (or none was declared).
    TypeNotAllowed,
    /// The bytes are not the declared type (an executable sent as
    /// image/png; an image whose header is malformed).
    TypeMismatch,
    /// A bad file name.
    Name(name::BadName),
}

impl Refusal {
    /// The stable word in the error body's `reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::TooLarge => "too_large",
            Refusal::Empty => "empty",
            Refusal::TypeNotAllowed => "type_not_allowed",
            Refusal::TypeMismatch => "type_mismatch",
            Refusal::Name(n) => n.reason(),
        }
    }

    /// The HTTP status: 413 for size, 415 for type, 400 otherwise.
    pub fn status(self) -> u16 {
        match self {
            Refusal::TooLarge => 413,
            Refusal::TypeNotAllowed | Refusal::TypeMismatch => 415,
            Refusal::Empty | Refusal::Name(_) => 400,
        }
    }
}

/// Why receiving an upload failed.
#[derive(Debug)]
pub enum ReceiveError {
    Refused(Refusal, String),
    /// The client's body broke off (a reset, a malformed chunk).
    Body(String),
    /// The data directory could not be written.
    Disk(std::io::Error),
}

/// An upload that passed every check, in its temporary file.
#[derive(Debug)]
pub struct Received {
    tmp: TempFile,
    pub size: u64,
    pub sha256: [u8; 32],
    pub kind: Kind,
    pub dims: Option<(u32, u32)>,
}

/// A temporary file, removed when dropped unless moved into place.
#[derive(Debug)]
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The server's files: where their bytes live, the upload limit, and the
/// link secret.
pub struct Files {
    root: PathBuf,
    tmp: PathBuf,
    /// `max_upload_bytes`.
    pub max_bytes: u64,
    /// How long a signed link lasts.
    pub link_ttl: Duration,
    key: LinkKey,
    /// Held while bytes are moved into place with their row, and while
    /// housekeeping removes a dead hash's bytes (module doc).
    blobs: tokio::sync::Mutex<()>,
    next_tmp: AtomicU64,
}

impl Files {
    /// Opens (creating) `DATA_DIR/files`, clears uploads a previous run
    /// left half-received, and reads or creates the link secret.
    pub fn open(data_dir: &Path, max_bytes: u64, link_ttl: Duration) -> std::io::Result<Files> {
        let root = data_dir.join("files");
        let tmp = root.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        let key = LinkKey::load_or_create(&data_dir.join("file-link.key"))?;
        Ok(Files {
            root,
            tmp,
            max_bytes,
            link_ttl,
            key,
            blobs: tokio::sync::Mutex::new(()),
            next_tmp: AtomicU64::new(1),
        })
    }

    /// Where the bytes of `sha256` live.
    pub fn blob_path(&self, sha256: &[u8; 32]) -> PathBuf {
        let hex = hex::encode(sha256);
        self.root.join(&hex[..2]).join(&hex[2..4]).join(hex)
    }

    /// Streams `body` into a temporary file, hashing it, and checks it:
    /// at most `max_bytes`, not empty, and bytes of the `declared` type.
    pub async fn receive(&self, mut body: Body, declared: Kind) -> Result<Received, ReceiveError> {
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let path = self.tmp.join(format!("upload-{}-{n}", std::process::id()));
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(ReceiveError::Disk)?;
        let tmp = TempFile(Some(path));
        let mut hash = Sha256::new();
        let mut head = Vec::new();
        let mut text = sniff::TextCheck::default();
        let mut size: u64 = 0;
        loop {
            let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|e| ReceiveError::Body(e.to_string()))?;
            let Ok(chunk) = frame.into_data() else {
                continue; // trailers
            };
            size += chunk.len() as u64;
            if size > self.max_bytes {
                return Err(ReceiveError::Refused(
                    Refusal::TooLarge,
                    format!("the file is larger than {} bytes", self.max_bytes),
                ));
            }
            hash.update(&chunk);
            if head.len() < HEAD_BYTES {
                let take = (HEAD_BYTES - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
            }
            if declared == Kind::Text {
                text.feed(&chunk);
            }
            file.write_all(&chunk).await.map_err(ReceiveError::Disk)?;
        }
        if size == 0 {
            return Err(ReceiveError::Refused(
                Refusal::Empty,
                "the file is empty".into(),
            ));
        }
        let mismatch = |what: &str| {
            ReceiveError::Refused(
                Refusal::TypeMismatch,
                format!("the bytes are not {what}, the declared type"),
            )
        };
        let matches = match declared {
            Kind::Text => text.is_text(),
            other => other.signed_by(&head),
        };
        if !matches {
            return Err(mismatch(declared.essence()));
        }
        let dims = sniff::dimensions(declared, &head);
        // A PNG, GIF or WebP states its size in its first bytes: without
        // one it is malformed. A JPEG's frame header may lie beyond the
        // head; then its size is unknown.
        if declared.is_image() && declared != Kind::Jpeg && dims.is_none() {
            return Err(mismatch(declared.essence()));
        }
        file.sync_all().await.map_err(ReceiveError::Disk)?;
        Ok(Received {
            tmp,
            size,
            sha256: hash.finalize().into(),
            kind: declared,
            dims,
        })
    }

    /// Keeps a received upload: its bytes go into place unless the same
    /// bytes are there already, and its row is recorded. Returns the
    /// file's id. On a store error the bytes this call placed are removed.
    pub async fn keep(
        &self,
        store: &dyn Store,
        mut received: Received,
        room: RoomId,
        uploader: UserId,
        name: String,
        now: Millis,
    ) -> Result<Kept, KeepError> {
        let blob = self.blob_path(&received.sha256);
        let _turn = self.blobs.lock().await;
        let placed = if tokio::fs::try_exists(&blob).await.unwrap_or(false) {
            false
        } else {
            if let Some(dir) = blob.parent() {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(KeepError::Disk)?;
            }
            let from = received.tmp.0.take().unwrap_or_default();
            if let Err(e) = tokio::fs::rename(&from, &blob).await {
                received.tmp.0 = Some(from);
                return Err(KeepError::Disk(e));
            }
            true
        };
        let file = NewFile {
            room,
            uploader,
            name,
            content_type: received.kind.content_type().to_owned(),
            size: received.size,
            sha256: received.sha256,
            width: received.dims.map(|d| d.0),
            height: received.dims.map(|d| d.1),
            created_at: now,
        };
        match crate::metrics::query("insert_file", store.insert_file(&file)).await {
            Ok(id) => Ok(Kept {
                id,
                file,
                deduplicated: !placed,
            }),
            Err(e) => {
                if placed {
                    let _ = tokio::fs::remove_file(&blob).await;
                }
                Err(KeepError::Store(e))
            }
        }
    }

    /// A signed link to file `id`, valid for `link_ttl` from `now_ms`:
    /// `(expires, sig)`.
    pub fn sign(&self, id: u64, now_ms: Millis) -> (u64, String) {
        let expires = now_ms / 1000 + self.link_ttl.as_secs();
        (expires, self.key.sign(id, expires))
    }

    /// Checks a signed link at `now_ms`.
    pub fn verify(
        &self,
        id: u64,
        expires: u64,
        sig: &str,
        now_ms: Millis,
    ) -> Result<(), LinkRefused> {
        self.key.verify(id, expires, sig, now_ms / 1000)
    }

    /// Housekeeping's part: marks deleted the files of deleted messages
    /// and the uploads nothing referenced since before `cutoff`, then
    /// removes the bytes no live file uses and forgets their rows.
    pub async fn sweep(&self, store: &dyn Store, cutoff: Millis) -> Result<Swept, StoreError> {
        let expired = store.expire_files(cutoff).await?;
        let _turn = self.blobs.lock().await;
        let mut swept = Swept {
            expired,
            ..Swept::default()
        };
        for hash in store.dead_hashes().await? {
            let blob = self.blob_path(&hash);
            match tokio::fs::remove_file(&blob).await {
                Ok(()) => swept.blobs += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(error = %e, path = %blob.display(), "cannot remove a file's bytes");
                    continue;
                }
            }
            swept.rows += store.forget_files(&hash).await?;
        }
        Ok(swept)
    }
}

/// A kept upload.
#[derive(Debug)]
pub struct Kept {
    pub id: u64,
    pub file: NewFile,
    /// Its bytes were stored already (another upload of the same bytes).
    pub deduplicated: bool,
}

/// Why keeping an upload failed.
#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    #[error("cannot place the file's bytes: {0}")]
    Disk(std::io::Error),
    #[error("cannot record the file: {0}")]
    Store(StoreError),
}

/// What one [`Files::sweep`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Files newly marked deleted.
    pub expired: u64,
    /// Hashes whose bytes were removed.
    pub blobs: u64,
    /// Rows forgotten.
    pub rows: u64,
}
