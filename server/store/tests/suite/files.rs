//! Uploaded files' metadata: recorded, claimed by one message, deleted with
//! it, expired when never referenced, and forgotten once no live file
//! uses their bytes.

use confab_protocol::{RoomId, Seq, UserId, Visibility};
use confab_store::{ClaimRefused, NewFile, Store, StoredEvent, WriteOp};

use super::{append, apply, create_room, event, user};

const DAY: u64 = 24 * 3600 * 1000;

fn upload(room: u64, uploader: UserId, hash: u8, at: u64) -> NewFile {
    NewFile {
        room: RoomId(room),
        uploader,
        name: format!("f{hash}.png"),
        content_type: "image/png".into(),
        size: 1_000 + u64::from(hash),
        sha256: [hash; 32],
        width: Some(640),
        height: Some(480),
        created_at: at,
    }
}

/// The batch op attaching claimed files to message `seq` of room 1.
fn attach_op(files: &[u64], seq: u64) -> WriteOp {
    WriteOp::AttachFiles {
        room: RoomId(1),
        seq: Seq(seq),
        files: files.to_vec(),
    }
}

fn release_op(files: &[u64]) -> WriteOp {
    WriteOp::ReleaseFiles {
        files: files.to_vec(),
    }
}

/// Claims file `id` for message `seq` of room 1 and attaches it there.
async fn attach(store: &dyn Store, id: u64, uploader: UserId, seq: u64) {
    let claim = store.claim_file(id, uploader, RoomId(1)).await;
    claim.expect("claim").expect("claimed");
    apply(store, vec![attach_op(&[id], seq)]).await;
}

pub async fn files_are_recorded_with_every_field_and_ids_are_never_reused(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let png = upload(1, alice, 7, 5_000);
    let first = store.insert_file(&png).await.expect("insert");
    let text = NewFile {
        content_type: "text/plain; charset=utf-8".into(),
        width: None,
        height: None,
        name: "notes — été.txt".into(),
        ..upload(1, alice, 8, 5_001)
    };
    let second = store.insert_file(&text).await.expect("insert");
    assert!(second > first, "{second} after {first}");

    let got = store.file(first).await.expect("file").expect("exists");
    assert_eq!(
        (got.id, &got.file, got.message, got.deleted),
        (first, &png, None, false)
    );
    let got = store.file(second).await.expect("file").expect("exists");
    assert_eq!(got.file, text, "no size for a file that is not an image");
    assert_eq!(store.file(second + 100).await.expect("file"), None);
    assert_eq!(store.file(u64::MAX).await.expect("huge id"), None);
}

pub async fn a_file_is_claimed_once_by_its_uploader_in_its_room(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let id = store
        .insert_file(&upload(1, alice, 1, 5_000))
        .await
        .unwrap();

    let claim = |user, room| store.claim_file(id, user, RoomId(room));
    assert_eq!(claim(bob, 1).await.unwrap(), Err(ClaimRefused::NotUploader));
    assert_eq!(claim(alice, 2).await.unwrap(), Err(ClaimRefused::OtherRoom));
    assert_eq!(
        store.claim_file(id + 1, alice, RoomId(1)).await.unwrap(),
        Err(ClaimRefused::Unknown)
    );
    // The first claim wins, and answers the file as claimed; a second is
    // refused while it holds, and after.
    let claimed = claim(alice, 1).await.unwrap().expect("claimed");
    assert_eq!((claimed.id, claimed.message), (id, Some(Seq(0))));
    assert_eq!(claimed.file, upload(1, alice, 1, 5_000));
    assert_eq!(
        claim(alice, 1).await.unwrap(),
        Err(ClaimRefused::AlreadyAttached)
    );
    // A refused message gives its claim back.
    apply(store, vec![release_op(&[id])]).await;
    assert_eq!(store.file(id).await.unwrap().unwrap().message, None);
    assert!(claim(alice, 1).await.unwrap().is_ok());
    // Attaching in another room's name changes nothing.
    apply(
        store,
        vec![WriteOp::AttachFiles {
            room: RoomId(2),
            seq: Seq(4),
            files: vec![id],
        }],
    )
    .await;
    assert_eq!(store.file(id).await.unwrap().unwrap().message, Some(Seq(0)));
    apply(store, vec![attach_op(&[id], 4)]).await;
    assert_eq!(store.file(id).await.unwrap().unwrap().message, Some(Seq(4)));
    // An attached file is not released by a late release, nor moved to
    // another message by a replayed attach.
    apply(store, vec![release_op(&[id]), attach_op(&[id], 5)]).await;
    assert_eq!(store.file(id).await.unwrap().unwrap().message, Some(Seq(4)));
    assert_eq!(
        claim(alice, 1).await.unwrap(),
        Err(ClaimRefused::AlreadyAttached)
    );

    // Deleting the message deletes its files (another message's stay); a
    // deleted file is unknown.
    let other = store
        .insert_file(&upload(1, alice, 2, 5_000))
        .await
        .unwrap();
    attach(store, other, alice, 6).await;
    let drop_op = WriteOp::DropMessageFiles {
        room: RoomId(1),
        seq: Seq(4),
    };
    apply(store, vec![drop_op]).await;
    let f = store.file(id).await.unwrap().unwrap();
    assert!(f.deleted);
    assert!(!store.file(other).await.unwrap().unwrap().deleted);
    assert_eq!(claim(alice, 1).await.unwrap(), Err(ClaimRefused::Unknown));
}

pub async fn a_message_attached_and_deleted_in_one_batch_ends_with_its_files_deleted(
    store: &dyn Store,
) {
    let alice = user(store, "alice").await;
    let id = store
        .insert_file(&upload(1, alice, 3, 5_000))
        .await
        .unwrap();
    store
        .claim_file(id, alice, RoomId(1))
        .await
        .unwrap()
        .unwrap();
    let drop_op = WriteOp::DropMessageFiles {
        room: RoomId(1),
        seq: Seq(9),
    };
    apply(store, vec![attach_op(&[id], 9), drop_op]).await;
    let f = store.file(id).await.unwrap().unwrap();
    assert_eq!((f.message, f.deleted), (Some(Seq(9)), true));
}

pub async fn a_claim_whose_message_never_committed_expires_like_an_unreferenced_upload(
    store: &dyn Store,
) {
    let alice = user(store, "alice").await;
    let t0 = 1_000 * DAY;
    let stuck = store.insert_file(&upload(1, alice, 4, t0)).await.unwrap();
    let fresh = store
        .insert_file(&upload(1, alice, 5, t0 + DAY))
        .await
        .unwrap();
    for id in [stuck, fresh] {
        let claim = store.claim_file(id, alice, RoomId(1)).await;
        claim.unwrap().unwrap();
    }
    // A day and a minute after t0 (the cutoff a day before that), the
    // old claim is a crash's leftover; the new one may be a message
    // being sent.
    assert_eq!(store.expire_files(t0 + 60_000).await.unwrap(), 1);
    assert!(store.file(stuck).await.unwrap().unwrap().deleted);
    assert!(!store.file(fresh).await.unwrap().unwrap().deleted);
}

pub async fn housekeeping_expires_files_and_forgets_only_dead_hashes(store: &dyn Store) {
    let alice = user(store, "alice").await;
    apply(
        store,
        vec![create_room(1, "r", "", Visibility::Public, alice)],
    )
    .await;
    let t0 = 1_000 * DAY;
    // Two uploads of the same bytes (hash 1): one attached to message 1,
    // one never referenced. Hash 2: attached to message 2, which is
    // deleted (a tombstone in the store). Hash 3: unreferenced, recent.
    let kept = store.insert_file(&upload(1, alice, 1, t0)).await.unwrap();
    let stale_twin = store.insert_file(&upload(1, alice, 1, t0)).await.unwrap();
    let of_deleted = store.insert_file(&upload(1, alice, 2, t0)).await.unwrap();
    attach(store, kept, alice, 1).await;
    attach(store, of_deleted, alice, 2).await;
    let tombstone = WriteOp::RewriteEvent(StoredEvent {
        kind: 12,
        ..event(1, 2, alice, "")
    });
    apply(
        store,
        vec![
            append(1, 1, alice, "one"),
            append(1, 2, alice, "two"),
            tombstone,
        ],
    )
    .await;
    let recent = store
        .insert_file(&upload(1, alice, 3, t0 + DAY))
        .await
        .unwrap();

    // Nothing is dead before a pass marks anything.
    assert!(store.dead_hashes().await.unwrap().is_empty());
    // A pass a day and an hour after t0: the unreferenced twin and the
    // deleted message's file go; the recent upload stays.
    let marked = store.expire_files(t0 + DAY / 2).await.unwrap();
    assert_eq!(marked, 2);
    let deleted = |id| async move { store.file(id).await.unwrap().map(|f| f.deleted) };
    assert_eq!(deleted(kept).await, Some(false));
    assert_eq!(deleted(stale_twin).await, Some(true));
    assert_eq!(deleted(of_deleted).await, Some(true));
    assert_eq!(deleted(recent).await, Some(false));
    // Hash 1 is still used by the kept file: only hash 2 is dead.
    assert_eq!(store.dead_hashes().await.unwrap(), vec![[2; 32]]);
    assert_eq!(store.forget_files(&[2; 32]).await.unwrap(), 1);
    assert_eq!(store.file(of_deleted).await.unwrap(), None);
    // Forgetting a hash a live file uses removes nothing.
    assert_eq!(store.forget_files(&[1; 32]).await.unwrap(), 0);
    assert_eq!(deleted(stale_twin).await, Some(true));
    assert!(store.dead_hashes().await.unwrap().is_empty());
    // Passes are idempotent.
    assert_eq!(store.expire_files(t0 + DAY / 2).await.unwrap(), 0);
}

pub async fn tombstones_expire_files_in_either_event_table(store: &dyn Store) {
    let alice = user(store, "alice").await;
    apply(
        store,
        vec![create_room(1, "r", "", Visibility::Public, alice)],
    )
    .await;
    let folded = store.insert_file(&upload(1, alice, 1, 5)).await.unwrap();
    let logged = store.insert_file(&upload(1, alice, 2, 5)).await.unwrap();
    attach(store, folded, alice, 1).await;
    attach(store, logged, alice, 2).await;
    apply(store, vec![append(1, 1, alice, "one")]).await;
    // On SQLite, message 1 moves to `events`; message 2 stays in the log.
    store.tidy(true).await.expect("tidy");
    apply(store, vec![append(1, 2, alice, "two")]).await;
    let tomb = |seq| {
        WriteOp::RewriteEvent(StoredEvent {
            kind: 12,
            ..event(1, seq, alice, "")
        })
    };
    apply(store, vec![tomb(1), tomb(2)]).await;
    assert_eq!(store.expire_files(0).await.unwrap(), 2);
}
