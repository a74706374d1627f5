//! Governance end to end: the real server, real sockets, the SDK. The rules
//! themselves are unit-tested in the room state machine; these scenarios
//! check that they hold through every layer and survive a restart — each
//! one against both stores (SQLite and Postgres), from one body.

mod common;

use std::time::Duration;

use common::{Backend, TestServer};
use confab_protocol::{
    ErrorCode, EventBody, NotificationKind as kind, Role, RoomId, UserRef, Visibility,
};
use confab_sdk::{Client, ConnectOptions, Event, Notification};

const WAIT: Duration = Duration::from_secs(5);

async fn user(url: &str, name: &str) -> Client {
    let c = Client::connect(url, ConnectOptions::default())
        .await
        .expect("connect");
    c.register(name, "password123").await.expect("register");
    c
}

async fn login(url: &str, name: &str) -> Client {
    let c = Client::connect(url, ConnectOptions::default())
        .await
        .expect("connect");
    c.login(name, "password123").await.expect("login");
    c
}

/// The next notification, skipping other events.
async fn next_notification(c: &Client) -> Notification {
    loop {
        match c.next_event_timeout(WAIT).await.ok().flatten() {
            Some(Event::Notification(n)) => return n,
            Some(_) => continue,
            None => panic!("no notification within {WAIT:?}"),
        }
    }
}

/// Waits for a room event matching `pred`.
async fn room_event(c: &Client, pred: impl Fn(&EventBody) -> bool) -> confab_protocol::RoomEvent {
    loop {
        match c.next_event_timeout(WAIT).await.ok().flatten() {
            Some(Event::Room(ev)) if pred(&ev.body) => return ev,
            Some(_) => continue,
            None => panic!("no matching room event within {WAIT:?}"),
        }
    }
}

fn code(err: confab_sdk::Error) -> Option<ErrorCode> {
    err.code()
}

async fn invite_accept_chat_kick_request_approve(backend: Backend) {
    let srv = match TestServer::start_on(backend, "invite_accept_chat_kick_request_approve", |_| {})
        .await
    {
        Some(srv) => srv,
        None => return,
    };
    let url = srv.url();
    let alice = user(&url, "alice").await;
    let bob = user(&url, "bob").await;
    let room = alice
        .create_room("inner circle", "", Visibility::Private)
        .await
        .unwrap()
        .id;

    // bob cannot just walk in.
    assert_eq!(
        code(bob.join_room(room).await.unwrap_err()),
        Some(ErrorCode::RoomPrivate)
    );
    // Only admins invite; alice invites bob by username.
    alice.invite(room, UserRef::name("BOB")).await.unwrap();
    let n = next_notification(&bob).await;
    assert_eq!(
        (n.kind, n.room, n.actor_name.as_str(), n.room_name.as_str()),
        (kind::Invited, room, "alice", "inner circle")
    );
    let info = bob.accept_invite(room).await.unwrap();
    assert_eq!(info.member_count, 2);
    assert_eq!(
        code(bob.invite(room, UserRef::name("alice")).await.unwrap_err()),
        Some(ErrorCode::NotAdmin)
    );

    // They chat.
    bob.send_message(room, "thanks for having me")
        .await
        .unwrap();
    let ev = room_event(&alice, |b| matches!(b, EventBody::Message { .. })).await;
    assert_eq!(ev.actor_name, "bob");

    // alice kicks bob: he sees the kick and is told.
    let bob_id = bob.session().unwrap().user;
    alice.kick(room, bob_id).await.unwrap();
    let ev = room_event(&bob, |b| matches!(b, EventBody::MemberKicked { .. })).await;
    assert_eq!(
        ev.body,
        EventBody::MemberKicked {
            target: bob_id,
            target_name: "bob".into()
        }
    );
    assert_eq!(next_notification(&bob).await.kind, kind::Kicked);
    assert_eq!(
        code(bob.send_message(room, "hello?").await.unwrap_err()),
        Some(ErrorCode::NotAMember)
    );

    // He asks to come back; the admin sees the request and approves it.
    bob.request_join(room).await.unwrap();
    let n = next_notification(&alice).await;
    assert_eq!((n.kind, n.actor), (kind::JoinRequest, bob_id));
    let pending = alice.join_requests(room).await.unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|u| u.username.as_str())
            .collect::<Vec<_>>(),
        vec!["bob"]
    );
    alice.decide_request(room, bob_id, true).await.unwrap();
    assert_eq!(next_notification(&bob).await.kind, kind::RequestApproved);
    bob.send_message(room, "back again").await.unwrap();
    let members: Vec<_> = alice
        .members(room)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.username, m.role))
        .collect();
    assert_eq!(
        members,
        vec![("alice".into(), Role::Owner), ("bob".into(), Role::Member)]
    );
    srv.stop().await;
}

async fn a_banned_user_cannot_return_and_does_not_see_the_room_until_unbanned(backend: Backend) {
    let srv = match TestServer::start_on(
        backend,
        "a_banned_user_cannot_return_and_does_not_see_the_room_until_unbanned",
        |_| {},
    )
    .await
    {
        Some(srv) => srv,
        None => return,
    };
    let url = srv.url();
    let alice = user(&url, "alice").await;
    let mallory = user(&url, "mallory").await;
    let room = alice
        .create_room("gardening", "tomatoes", Visibility::Public)
        .await
        .unwrap()
        .id;
    mallory.join_room(room).await.unwrap();
    let (found, _) = mallory
        .list_rooms("garden", 0, 10)
        .await
        .map(|p| (p.rooms, p.total))
        .unwrap();
    assert_eq!(found.len(), 1);

    alice.ban(room, UserRef::name("mallory")).await.unwrap();
    assert_eq!(next_notification(&mallory).await.kind, kind::Banned);
    let (found, total) = mallory
        .list_rooms("garden", 0, 10)
        .await
        .map(|p| (p.rooms, p.total))
        .unwrap();
    assert!(
        found.is_empty() && total == 0,
        "hidden from the banned user"
    );
    let (found, _) = mallory
        .list_rooms("", 0, 10)
        .await
        .map(|p| (p.rooms, p.total))
        .unwrap();
    assert!(found.iter().all(|r| r.id != room));
    assert_eq!(
        code(mallory.join_room(room).await.unwrap_err()),
        Some(ErrorCode::Banned)
    );
    assert_eq!(
        code(mallory.request_join(room).await.unwrap_err()),
        Some(ErrorCode::Banned)
    );
    assert_eq!(
        code(
            alice
                .invite(room, UserRef::name("mallory"))
                .await
                .unwrap_err()
        ),
        Some(ErrorCode::TargetBanned)
    );
    let bans = alice.bans(room).await.unwrap();
    assert_eq!(bans.len(), 1);

    alice.unban(room, bans[0].user).await.unwrap();
    assert_eq!(next_notification(&mallory).await.kind, kind::Unbanned);
    let (found, _) = mallory
        .list_rooms("garden", 0, 10)
        .await
        .map(|p| (p.rooms, p.total))
        .unwrap();
    assert_eq!(found.len(), 1);
    mallory.request_join(room).await.unwrap();
    srv.stop().await;
}

async fn a_kick_while_offline_is_notified_on_connect(backend: Backend) {
    let srv = match TestServer::start_on(
        backend,
        "a_kick_while_offline_is_notified_on_connect",
        |_| {},
    )
    .await
    {
        Some(srv) => srv,
        None => return,
    };
    let url = srv.url();
    let alice = user(&url, "alice").await;
    let bob = user(&url, "bob").await;
    let room = alice
        .create_room("r", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    bob.join_room(room).await.unwrap();
    let bob_id = bob.session().unwrap().user;
    bob.close().await;
    drop(bob);
    alice.kick(room, bob_id).await.unwrap();

    let bob = login(&url, "bob").await;
    let n = next_notification(&bob).await;
    assert_eq!((n.kind, n.room, n.read), (kind::Kicked, room, false));
    let page = bob.notifications(None, 10, false).await.unwrap();
    assert_eq!(page.unread, 1);
    assert_eq!(page.items[0].id, n.id);
    assert_eq!(bob.mark_read(n.id).await.unwrap(), 0, "badge cleared");
    assert!(bob
        .notifications(None, 10, true)
        .await
        .unwrap()
        .items
        .is_empty());
    srv.stop().await;
}

async fn succession_then_termination_when_one_non_admin_is_left(backend: Backend) {
    let srv = match TestServer::start_on(
        backend,
        "succession_then_termination_when_one_non_admin_is_left",
        |_| {},
    )
    .await
    {
        Some(srv) => srv,
        None => return,
    };
    let url = srv.url();
    let (alice, bob, carol) = (
        user(&url, "alice").await,
        user(&url, "bob").await,
        user(&url, "carol").await,
    );
    let room = alice
        .create_room("club", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    bob.join_room(room).await.unwrap();
    carol.join_room(room).await.unwrap();

    // The owner leaves: bob (next by join order) becomes owner.
    alice.leave_room(room).await.unwrap();
    let ev = room_event(&carol, |b| matches!(b, EventBody::RoleChanged { .. })).await;
    assert_eq!(ev.actor.0, 0, "a system change");
    assert!(
        matches!(ev.body, EventBody::RoleChanged { role: Role::Owner, ref target_name, .. } if target_name == "bob")
    );
    let roles: Vec<_> = carol
        .members(room)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.username, m.role))
        .collect();
    assert_eq!(
        roles,
        vec![("bob".into(), Role::Owner), ("carol".into(), Role::Member)]
    );

    // bob leaves too: carol is the last member and not an admin, so the
    // room terminates and she is told.
    bob.leave_room(room).await.unwrap();
    let (mut saw_event, mut saw_notification) = (false, false);
    while !(saw_event && saw_notification) {
        match carol.next_event_timeout(WAIT).await.ok().flatten() {
            Some(Event::Room(ev)) if ev.body == EventBody::RoomTerminated => saw_event = true,
            Some(Event::Notification(n)) if n.kind == kind::RoomTerminated => {
                assert_eq!(n.room, room);
                saw_notification = true;
            }
            Some(_) => continue,
            None => panic!("carol was not told of the termination (event {saw_event}, notification {saw_notification})"),
        }
    }
    assert_eq!(
        code(carol.send_message(room, "anyone?").await.unwrap_err()),
        Some(ErrorCode::RoomTerminated)
    );
    assert_eq!(
        code(carol.history(room, None, 10).await.unwrap_err()),
        Some(ErrorCode::RoomTerminated)
    );
    assert_eq!(
        code(alice.join_room(room).await.unwrap_err()),
        Some(ErrorCode::RoomTerminated)
    );
    let (found, _) = alice
        .list_rooms("club", 0, 10)
        .await
        .map(|p| (p.rooms, p.total))
        .unwrap();
    assert!(found.is_empty(), "terminated rooms vanish from listings");
    assert!(carol.my_rooms().await.unwrap().is_empty());

    // The room log remembers it, with the reason.
    let log = carol.room_log().await.unwrap();
    let entry = log
        .iter()
        .find(|e| e.room.id == room)
        .expect("in the room log");
    assert!(entry.terminated);
    assert_eq!(entry.reason, confab_sdk::LeaveReason::Terminated);
    let log = alice.room_log().await.unwrap();
    assert_eq!(
        log.iter().find(|e| e.room.id == room).map(|e| e.reason),
        Some(confab_sdk::LeaveReason::Left)
    );
    srv.stop().await;
}

async fn only_the_owner_promotes_and_admins_read_the_audit_trail(backend: Backend) {
    let srv = match TestServer::start_on(
        backend,
        "only_the_owner_promotes_and_admins_read_the_audit_trail",
        |_| {},
    )
    .await
    {
        Some(srv) => srv,
        None => return,
    };
    let url = srv.url();
    let (alice, bob, carol) = (
        user(&url, "alice").await,
        user(&url, "bob").await,
        user(&url, "carol").await,
    );
    let room = alice
        .create_room("ops", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    bob.join_room(room).await.unwrap();
    carol.join_room(room).await.unwrap();
    let (bob_id, carol_id) = (bob.session().unwrap().user, carol.session().unwrap().user);

    assert_eq!(
        code(bob.room_audit(room, None, 10).await.unwrap_err()),
        Some(ErrorCode::NotAdmin)
    );
    alice.set_role(room, bob_id, Role::Admin).await.unwrap();
    assert_eq!(next_notification(&bob).await.kind, kind::RoleChanged);
    assert_eq!(
        code(bob.set_role(room, carol_id, Role::Admin).await.unwrap_err()),
        Some(ErrorCode::NotOwner)
    );
    bob.kick(room, carol_id).await.unwrap();
    alice
        .update_room(room, "ops-team", "pager duty")
        .await
        .unwrap();

    let page = bob.room_audit(room, None, 50).await.unwrap();
    let actions: Vec<_> = page.items.iter().map(|i| i.action.as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "room_updated",
            "member_kicked",
            "role_changed",
            "member_joined",
            "member_joined",
            "room_created"
        ],
        "newest first"
    );
    let kick = &page.items[1];
    assert_eq!(
        (kick.actor_name.as_str(), kick.target_name.as_str()),
        ("bob", "carol")
    );
    let older = bob
        .room_audit(room, Some(page.items[1].id), 2)
        .await
        .unwrap();
    assert_eq!(older.items.len(), 2);
    assert!(older.has_more);
    srv.stop().await;
}

async fn new_public_rooms_are_announced_to_connected_users(backend: Backend) {
    let srv = match TestServer::start_on(
        backend,
        "new_public_rooms_are_announced_to_connected_users",
        |_| {},
    )
    .await
    {
        Some(srv) => srv,
        None => return,
    };
    let url = srv.url();
    let alice = user(&url, "alice").await;
    let bob = user(&url, "bob").await;
    let created = alice
        .create_room("announcements", "news", Visibility::Public)
        .await
        .unwrap();
    loop {
        match bob.next_event_timeout(WAIT).await.ok().flatten() {
            Some(Event::RoomAnnounced(info)) => {
                assert_eq!((info.id, info.name.as_str()), (created.id, "announcements"));
                break;
            }
            Some(_) => continue,
            None => panic!("bob was not told about the new room"),
        }
    }
    // A private room is not announced to others.
    alice
        .create_room("hidden", "", Visibility::Private)
        .await
        .unwrap();
    // A public room created after it is a barrier: an announcement of the
    // private room would have been queued to bob before this one.
    let marker = alice
        .create_room("marker", "", Visibility::Public)
        .await
        .unwrap();
    loop {
        match bob.next_event_timeout(WAIT).await.ok().flatten() {
            Some(Event::RoomAnnounced(info)) if info.id == marker.id => break,
            Some(Event::RoomAnnounced(info)) => panic!("private room leaked: {info:?}"),
            Some(_) => continue,
            None => panic!("bob was not told about the marker room"),
        }
    }
    srv.stop().await;
}

async fn governance_state_survives_a_restart(backend: Backend) {
    let mut srv =
        match TestServer::start_on(backend, "governance_state_survives_a_restart", |_| {}).await {
            Some(srv) => srv,
            None => return,
        };
    let url = srv.url();
    let alice = user(&url, "alice").await;
    let (bob, carol, dave) = (
        user(&url, "bob").await,
        user(&url, "carol").await,
        user(&url, "dave").await,
    );
    let room = alice
        .create_room("vault", "", Visibility::Private)
        .await
        .unwrap()
        .id;
    alice.invite(room, UserRef::name("bob")).await.unwrap();
    carol.request_join(room).await.unwrap();
    alice.ban(room, UserRef::name("dave")).await.unwrap();
    alice
        .invite(room, UserRef::name("eve_does_not_exist"))
        .await
        .map(|_| ())
        .unwrap_err();
    drop((alice, bob, carol, dave));
    srv.restart().await;
    let url = srv.url();

    let alice = login(&url, "alice").await;
    let bob = login(&url, "bob").await;
    let dave = login(&url, "dave").await;
    assert_eq!(
        alice.join_requests(room).await.unwrap().len(),
        1,
        "request kept"
    );
    assert_eq!(alice.bans(room).await.unwrap().len(), 1, "ban kept");
    assert_eq!(
        code(dave.join_room(room).await.unwrap_err()),
        Some(ErrorCode::Banned)
    );
    bob.accept_invite(room).await.expect("invitation kept");
    // Notification ids keep increasing across the restart.
    let before = bob.notifications(None, 10, false).await.unwrap().items[0].id;
    let bob_id = bob.session().unwrap().user;
    alice.kick(room, bob_id).await.unwrap();
    let after = bob.notifications(None, 10, false).await.unwrap().items[0].id;
    assert!(after > before);
    srv.stop().await;
}

async fn unknown_users_and_rooms_get_specific_errors(backend: Backend) {
    let srv = match TestServer::start_on(
        backend,
        "unknown_users_and_rooms_get_specific_errors",
        |_| {},
    )
    .await
    {
        Some(srv) => srv,
        None => return,
    };
    let alice = user(&srv.url(), "alice").await;
    let room = alice
        .create_room("r", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    assert_eq!(
        code(
            alice
                .invite(room, UserRef::name("nobody"))
                .await
                .unwrap_err()
        ),
        Some(ErrorCode::NoSuchUser)
    );
    assert_eq!(
        code(
            alice
                .ban(room, UserRef::id(confab_protocol::UserId(9999)))
                .await
                .unwrap_err()
        ),
        Some(ErrorCode::NoSuchUser)
    );
    assert_eq!(
        code(alice.request_join(RoomId(777)).await.unwrap_err()),
        Some(ErrorCode::RoomNotFound)
    );
    assert_eq!(
        code(
            alice
                .kick(room, alice.session().unwrap().user)
                .await
                .unwrap_err()
        ),
        Some(ErrorCode::CannotTargetSelf)
    );
    assert_eq!(
        code(alice.notifications(None, 0, false).await.unwrap_err()),
        Some(ErrorCode::InvalidPaging)
    );
    assert_eq!(
        code(alice.decline_invite(room).await.unwrap_err()),
        Some(ErrorCode::NotInvited)
    );
    srv.stop().await;
}

on_both_stores!(
    invite_accept_chat_kick_request_approve,
    a_banned_user_cannot_return_and_does_not_see_the_room_until_unbanned,
    a_kick_while_offline_is_notified_on_connect,
    succession_then_termination_when_one_non_admin_is_left,
    only_the_owner_promotes_and_admins_read_the_audit_trail,
    new_public_rooms_are_announced_to_connected_users,
    governance_state_survives_a_restart,
    unknown_users_and_rooms_get_specific_errors,
);
