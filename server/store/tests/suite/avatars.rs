//! Avatars: image files in no room, made a user's avatar by an account
//! write that retires the previous one, and cleaned up by housekeeping
//! when replaced or never set.

use confab_protocol::{RoomId, UserId};
use confab_store::{AccountOutcome, AccountWrite, ClaimRefused, NewFile, Store};

use super::user;

const DAY: u64 = 24 * 3600 * 1000;

fn avatar(uploader: UserId, hash: u8, at: u64) -> NewFile {
    NewFile {
        room: RoomId(0),
        uploader,
        name: "avatar.png".into(),
        content_type: "image/png".into(),
        size: 900 + u64::from(hash),
        sha256: [hash; 32],
        width: Some(128),
        height: Some(96),
        created_at: at,
    }
}

async fn set(store: &dyn Store, user: UserId, file: Option<u64>) -> AccountOutcome {
    let out = store
        .write_accounts(&[AccountWrite::SetAvatar { user, file }])
        .await
        .expect("write_accounts");
    assert_eq!(out.len(), 1);
    out[0]
}

async fn shown(store: &dyn Store, user: UserId) -> Option<u64> {
    store
        .profile(user)
        .await
        .expect("profile")
        .expect("user")
        .avatar
}

async fn deleted(store: &dyn Store, id: u64) -> Option<bool> {
    store.file(id).await.expect("file").map(|f| f.deleted)
}

pub async fn avatars_are_set_replaced_and_cleared_retiring_the_old_one(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let first = store
        .insert_avatar_file(&avatar(alice, 1, 5_000))
        .await
        .expect("insert");
    let got = store.file(first).await.unwrap().expect("recorded");
    assert_eq!(
        (&got.file, got.avatar, got.deleted, got.message),
        (&avatar(alice, 1, 5_000), true, false, None)
    );
    assert_eq!(shown(store, alice).await, None, "recorded is not yet set");

    assert_eq!(
        set(store, alice, Some(first)).await,
        AccountOutcome::Updated
    );
    assert_eq!(shown(store, alice).await, Some(first));
    // An avatar is in no room: no message can attach it.
    assert_eq!(
        store.claim_file(first, alice, RoomId(1)).await.unwrap(),
        Err(ClaimRefused::OtherRoom)
    );

    // A new avatar retires the old one in the same write; bob's is his own.
    let bobs = store
        .insert_avatar_file(&avatar(bob, 3, 5_000))
        .await
        .unwrap();
    assert_eq!(set(store, bob, Some(bobs)).await, AccountOutcome::Updated);
    let second = store
        .insert_avatar_file(&avatar(alice, 2, 6_000))
        .await
        .unwrap();
    assert_eq!(
        set(store, alice, Some(second)).await,
        AccountOutcome::Updated
    );
    assert_eq!(shown(store, alice).await, Some(second));
    assert_eq!(deleted(store, first).await, Some(true));
    assert_eq!(deleted(store, second).await, Some(false));
    assert_eq!(store.dead_hashes().await.unwrap(), vec![[1; 32]]);

    // Clearing retires the current one; bob's stays.
    assert_eq!(set(store, alice, None).await, AccountOutcome::Updated);
    assert_eq!(shown(store, alice).await, None);
    assert_eq!(deleted(store, second).await, Some(true));
    assert_eq!(deleted(store, bobs).await, Some(false));
    assert_eq!(shown(store, bob).await, Some(bobs));

    // An unknown user: nothing written, nobody's avatar retired.
    assert_eq!(
        set(store, UserId(999_999), Some(bobs)).await,
        AccountOutcome::NoSuchUser
    );
    assert_eq!(deleted(store, bobs).await, Some(false));

    // An avatar names no room.
    let in_a_room = NewFile {
        room: RoomId(7),
        ..avatar(alice, 4, 7_000)
    };
    assert!(store.insert_avatar_file(&in_a_room).await.is_err());
}

pub async fn housekeeping_keeps_avatars_in_use_and_expires_stray_ones(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let t0 = 1_000 * DAY;
    let in_use = store
        .insert_avatar_file(&avatar(alice, 1, t0))
        .await
        .unwrap();
    assert_eq!(
        set(store, alice, Some(in_use)).await,
        AccountOutcome::Updated
    );
    // An upload whose account write never happened: old, and recent.
    let stray = store
        .insert_avatar_file(&avatar(alice, 2, t0))
        .await
        .unwrap();
    let fresh = store
        .insert_avatar_file(&avatar(alice, 3, t0 + DAY))
        .await
        .unwrap();

    // A day later: the avatar in use is never "unreferenced"; the old
    // stray one goes, the fresh one (its write may be on its way) stays.
    assert_eq!(store.expire_files(t0 + DAY / 2).await.unwrap(), 1);
    assert_eq!(deleted(store, in_use).await, Some(false));
    assert_eq!(deleted(store, stray).await, Some(true));
    assert_eq!(deleted(store, fresh).await, Some(false));
    assert_eq!(store.dead_hashes().await.unwrap(), vec![[2; 32]]);
    assert_eq!(store.forget_files(&[2; 32]).await.unwrap(), 1);
    assert_eq!(store.file(stray).await.unwrap(), None);
    assert_eq!(store.expire_files(t0 + DAY / 2).await.unwrap(), 0);
}
