//! [`FileStore`] for every [`Backend`], written once: uploads' metadata,
//! the claim a message makes on its attachments, and housekeeping's part.

use confab_protocol::{Millis, RoomId, Seq, UserId};

use super::convert::out_of_range;
use super::sql;
use super::{to_db, to_db_opt, Arg, Backend, Columns, Sql};
use crate::{ClaimRefused, FileRecord, FileStore, NewFile, StoreError, StoreResult};

use Arg::{Bytes, Int, Text};

/// An image side as stored (0 means none: the statement stores NULL).
fn side(v: Option<u32>) -> i64 {
    v.map_or(0, i64::from)
}

fn opt_side(row: &impl Columns, column: &'static str) -> StoreResult<Option<u32>> {
    row.opt_int(column)?
        .map(|v| u32::try_from(v).map_err(|_| out_of_range(column, v)))
        .transpose()
}

/// `FILE_BY_ID`'s columns.
fn file(row: &impl Columns) -> StoreResult<FileRecord> {
    let hash = row.bytes("sha256")?;
    let sha256 = <[u8; 32]>::try_from(hash.as_slice())
        .map_err(|_| StoreError::database(format!("stored sha256 of {} bytes", hash.len())))?;
    Ok(FileRecord {
        id: row.u64("id")?,
        file: NewFile {
            room: RoomId(row.u64("room_id")?),
            uploader: UserId(row.u64("uploader_id")?),
            name: row.text("name")?,
            content_type: row.text("content_type")?,
            size: row.u64("size")?,
            sha256,
            width: opt_side(row, "width")?,
            height: opt_side(row, "height")?,
            created_at: row.u64("created_at")?,
        },
        message: row.opt_u64("message_seq")?.map(Seq),
        deleted: row.flag("deleted")?,
        avatar: row.flag("avatar")?,
    })
}

/// `INSERT_FILE`'s (and `INSERT_AVATAR_FILE`'s) arguments.
fn insert_args(f: &NewFile) -> StoreResult<[Arg<'_>; 9]> {
    Ok([
        Int(to_db(f.room.0, "room id")?),
        Int(to_db(f.uploader.0, "user id")?),
        Text(&f.name),
        Text(&f.content_type),
        Int(to_db(f.size, "size")?),
        Bytes(&f.sha256),
        Int(side(f.width)),
        Int(side(f.height)),
        Int(to_db(f.created_at, "created_at")?),
    ])
}

#[async_trait::async_trait]
impl<B: Backend> FileStore for B {
    async fn insert_file(&self, f: &NewFile) -> StoreResult<u64> {
        let row = self
            .writer()
            .row("insert_file", sql::INSERT_FILE, &insert_args(f)?)
            .await?
            .ok_or_else(|| StoreError::database("insert_file: no id returned"))?;
        row.u64("id")
    }

    async fn insert_avatar_file(&self, f: &NewFile) -> StoreResult<u64> {
        let row = self
            .writer()
            .row(
                "insert_avatar_file",
                sql::INSERT_AVATAR_FILE,
                &insert_args(f)?,
            )
            .await?
            .ok_or_else(|| StoreError::database("insert_avatar_file: no id returned"))?;
        row.u64("id")
    }

    async fn file(&self, id: u64) -> StoreResult<Option<FileRecord>> {
        let Some(id) = to_db_opt(id) else {
            return Ok(None);
        };
        let row = self
            .readers()
            .row("file", sql::FILE_BY_ID, &[Int(id)])
            .await?;
        row.map(|row| file(&row)).transpose()
    }

    async fn claim_file(
        &self,
        id: u64,
        uploader: UserId,
        room: RoomId,
    ) -> StoreResult<Result<FileRecord, ClaimRefused>> {
        let Some(db_id) = to_db_opt(id) else {
            return Ok(Err(ClaimRefused::Unknown));
        };
        let args = [
            Int(db_id),
            Int(to_db(uploader.0, "user id")?),
            Int(to_db(room.0, "room id")?),
        ];
        let claimed = self
            .writer()
            .row("claim_file", sql::CLAIM_FILE, &args)
            .await?;
        if let Some(row) = claimed {
            return file(&row).map(Ok);
        }
        // Refused: say why, from the row as it is now (read on the writer,
        // which has seen the claim's snapshot).
        let row = self
            .writer()
            .row("claim_file", sql::FILE_BY_ID, &[Int(db_id)])
            .await?;
        let Some(f) = row.map(|row| file(&row)).transpose()? else {
            return Ok(Err(ClaimRefused::Unknown));
        };
        Ok(Err(if f.deleted {
            ClaimRefused::Unknown
        } else if f.file.uploader != uploader {
            ClaimRefused::NotUploader
        } else if f.file.room != room {
            ClaimRefused::OtherRoom
        } else {
            ClaimRefused::AlreadyAttached
        }))
    }

    async fn expire_files(&self, cutoff: Millis) -> StoreResult<u64> {
        let cutoff = to_db_opt(cutoff).unwrap_or(i64::MAX);
        let w = self.writer();
        let deleted = w
            .execute("expire_files", Self::ROOM_SQL.expire_files_of_deleted, &[])
            .await?;
        let unreferenced = w
            .execute(
                "expire_files",
                sql::EXPIRE_UNREFERENCED_FILES,
                &[Int(cutoff)],
            )
            .await?;
        let stray = w
            .execute("expire_files", sql::EXPIRE_STRAY_AVATARS, &[Int(cutoff)])
            .await?;
        Ok(deleted + unreferenced + stray)
    }

    async fn dead_hashes(&self) -> StoreResult<Vec<[u8; 32]>> {
        let rows = self
            .writer()
            .rows("dead_hashes", sql::DEAD_HASHES, &[])
            .await?;
        rows.iter()
            .map(|row| {
                let hash = row.bytes("sha256")?;
                <[u8; 32]>::try_from(hash.as_slice())
                    .map_err(|_| StoreError::database("stored sha256 is not 32 bytes"))
            })
            .collect()
    }

    async fn forget_files(&self, sha256: &[u8; 32]) -> StoreResult<u64> {
        self.writer()
            .execute("forget_files", sql::FORGET_FILES, &[Bytes(sha256)])
            .await
    }
}
