//! Attaching uploaded files to a message (SPEC.md §13.5): the session
//! claims each file the message names before the room sees the message
//! (one statement, which also returns the file's description);
//! the message's batch then attaches them (`WriteOp::AttachFiles`), and a
//! refused message gives its claims back (`WriteOp::ReleaseFiles`).

use confab_protocol::{Attachment, ErrorCode, RoomId, UserId};
use confab_store::{ClaimRefused, Store, WriteOp};

use crate::persist::batch::{BatchHandle, WriteRequest};

/// Claims the files `ids` (already checked by
/// `confab_protocol::attach::check_file_ids`) for a message `user` sends
/// to `room`, in order, and describes them. On the first refusal the
/// claims made so far are given back and nothing else is claimed.
pub async fn claim(
    store: &dyn Store,
    batch: &BatchHandle,
    room: RoomId,
    user: UserId,
    ids: &[u64],
) -> Result<Vec<Attachment>, (ErrorCode, String)> {
    let mut claimed = Vec::with_capacity(ids.len());
    for &id in ids {
        match claim_one(store, room, user, id).await {
            Ok(file) => claimed.push(file),
            Err(refused) => {
                let mut given_back: Vec<u64> = claimed.iter().map(|f| f.id).collect();
                if refused.0 == ErrorCode::StorageUnavailable {
                    // It may have been claimed before the store failed.
                    given_back.push(id);
                }
                release(batch, room, given_back);
                return Err(refused);
            }
        }
    }
    Ok(claimed)
}

fn unavailable() -> (ErrorCode, String) {
    let code = ErrorCode::StorageUnavailable;
    (code, code.default_message().to_owned())
}

async fn claim_one(
    store: &dyn Store,
    room: RoomId,
    user: UserId,
    id: u64,
) -> Result<Attachment, (ErrorCode, String)> {
    let claim = store.claim_file(id, user, room).await;
    let why = match claim.map_err(|_| unavailable())? {
        Ok(f) => {
            return Ok(Attachment {
                id,
                name: f.file.name,
                content_type: f.file.content_type,
                size: f.file.size,
                width: f.file.width,
                height: f.file.height,
            })
        }
        Err(why) => why,
    };
    let (code, message) = match why {
        ClaimRefused::Unknown => (ErrorCode::UnknownFile, "does not exist or was deleted"),
        ClaimRefused::NotUploader => (
            ErrorCode::AttachmentNotYours,
            "was uploaded by someone else",
        ),
        ClaimRefused::OtherRoom => (
            ErrorCode::AttachmentNotYours,
            "was uploaded to another room",
        ),
        ClaimRefused::AlreadyAttached => (
            ErrorCode::AttachmentNotYours,
            "is attached to another message",
        ),
    };
    Err((code, format!("file {id} {message}")))
}

/// Gives claims back through the batch writer, on the lane of `room`, the
/// claims' message's room (in order after anything the message may have
/// queued and before the room's next writes; no reply waits on it).
pub fn release(batch: &BatchHandle, room: RoomId, files: Vec<u64>) {
    if !files.is_empty() {
        batch.submit_for(
            room,
            WriteRequest::new(vec![WriteOp::ReleaseFiles { files }]),
        );
    }
}
