//! Password changes and profiles: account writes through `write_accounts`.

use confab_protocol::{Profile, UserId};
use confab_store::{AccountOutcome, AccountWrite, Store};

use super::user;

async fn sessions(store: &dyn Store, user: UserId, tokens: &[[u8; 32]]) -> Vec<bool> {
    let mut alive = Vec::new();
    for token in tokens {
        let who = store.session_user(token, 2_000).await.expect("lookup");
        alive.push(who.is_some_and(|u| u.id == user));
    }
    alive
}

pub async fn a_password_change_keeps_one_session_and_ends_the_others(store: &dyn Store) {
    // Given alice with three sessions and bob with one
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    for (who, token) in [(alice, 1u8), (alice, 2), (alice, 3), (bob, 4)] {
        store
            .create_session(&[token; 32], who, 1_000, 9_000)
            .await
            .expect("session");
    }

    // When alice changes her password from session 2
    let outcomes = store
        .write_accounts(&[AccountWrite::ChangePassword {
            user: alice,
            password_hash: "$argon2id$new".into(),
            keep: [2; 32],
        }])
        .await
        .expect("write_accounts");

    // Then the hash is new, only session 2 is left of hers, bob's stays
    assert_eq!(outcomes, vec![AccountOutcome::Updated]);
    let stored = store
        .user_by_id(alice)
        .await
        .expect("lookup")
        .expect("alice");
    assert_eq!(stored.password_hash, "$argon2id$new");
    assert_eq!(
        sessions(store, alice, &[[1; 32], [2; 32], [3; 32]]).await,
        vec![false, true, false]
    );
    assert_eq!(sessions(store, bob, &[[4; 32]]).await, vec![true]);

    // And a change for an unknown user writes nothing
    let outcomes = store
        .write_accounts(&[AccountWrite::ChangePassword {
            user: UserId(999_999),
            password_hash: "x".into(),
            keep: [0; 32],
        }])
        .await
        .expect("write_accounts");
    assert_eq!(outcomes, vec![AccountOutcome::NoSuchUser]);
}

pub async fn profiles_are_replaced_read_back_and_cleared(store: &dyn Store) {
    // Given a new account: no profile yet
    let alice = user(store, "alice").await;
    let blank = Profile {
        user: alice,
        username: "alice".into(),
        ..Profile::default()
    };
    assert_eq!(
        store.profile(alice).await.expect("read"),
        Some(blank.clone())
    );
    assert_eq!(store.profile(UserId(999_999)).await.expect("read"), None);

    // When she sets every field
    let set = AccountWrite::UpdateProfile {
        user: alice,
        display_name: Some("Alice Ö.".into()),
        bio: "line one\nline two".into(),
        email: Some("alice@example.org".into()),
    };
    let outcomes = store.write_accounts(&[set]).await.expect("write");
    assert_eq!(outcomes, vec![AccountOutcome::Updated]);

    // Then it reads back byte for byte, the avatar still unset
    let full = Profile {
        display_name: Some("Alice Ö.".into()),
        bio: "line one\nline two".into(),
        email: Some("alice@example.org".into()),
        ..blank.clone()
    };
    assert_eq!(store.profile(alice).await.expect("read"), Some(full));

    // And clearing everything reads as a new account's profile again
    let clear = AccountWrite::UpdateProfile {
        user: alice,
        display_name: None,
        bio: String::new(),
        email: None,
    };
    store.write_accounts(&[clear]).await.expect("write");
    assert_eq!(store.profile(alice).await.expect("read"), Some(blank));

    // And an unknown user's update writes nothing
    let ghost = AccountWrite::UpdateProfile {
        user: UserId(999_999),
        display_name: Some("Ghost".into()),
        bio: String::new(),
        email: None,
    };
    assert_eq!(
        store.write_accounts(&[ghost]).await.expect("write"),
        vec![AccountOutcome::NoSuchUser]
    );
}
