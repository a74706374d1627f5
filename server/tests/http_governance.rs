//! Room governance through the HTTP JSON API (`server/src/net/api/
//! governance.rs`): every action, its JSON, its error statuses; and the
//! HTTP door's own guarantees — a per-user message rate limit, no presence
//! flicker from one-shot logins. (The main flow also runs under curl in
//! `foreign_clients.rs`.)

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::http::api;
use common::{TestServer, Transport};
use confab_protocol::{ErrorCode, RoomId, Visibility};
use serde_json::{json, Value};

/// Asserts an error response: status and protocol code name.
#[track_caller]
fn assert_err((status, v): (u16, Value), want: u16, code: ErrorCode) {
    assert_eq!(status, want, "{v}");
    assert_eq!(v["error"]["code"], json!(code as u16), "{v}");
    assert_eq!(v["error"]["name"], json!(code.name()), "{v}");
}

/// Registers over HTTP; returns (user id, token).
async fn register(addr: SocketAddr, name: &str) -> (u64, String) {
    let (status, v) = api(
        addr,
        "POST",
        "/api/register",
        None,
        Some(json!({"username": name, "password": "password123"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    (
        v["user"].as_u64().unwrap(),
        v["token"].as_str().unwrap().to_owned(),
    )
}

/// The bodies of a room's history, oldest first.
async fn bodies(addr: SocketAddr, token: &str, room: u64) -> Vec<Value> {
    let path = format!("/api/rooms/{room}/messages?limit=200");
    let (status, v) = api(addr, "GET", &path, Some(token), None).await;
    assert_eq!(status, 200, "{v}");
    let mut events: Vec<Value> = v["events"].as_array().unwrap().clone();
    events.reverse();
    events.into_iter().map(|e| e["body"].clone()).collect()
}

#[tokio::test]
async fn every_governance_action_over_http_with_its_json_and_errors() {
    let srv = TestServer::start().await;
    let addr = srv.addr_for(Transport::Ws);
    let (_olga, olga) = register(addr, "olga").await;
    let (max_id, max) = register(addr, "max").await;
    let (nina_id, nina) = register(addr, "nina").await;
    let (status, room) = api(
        addr,
        "POST",
        "/api/rooms",
        Some(&olga),
        Some(json!({"name": "plaza", "topic": "old topic"})),
    )
    .await;
    assert_eq!(status, 201, "{room}");
    let id = room["id"].as_u64().unwrap();
    let r = |p: &str| format!("/api/rooms/{id}{p}");
    for t in [&max, &nina] {
        assert_eq!(api(addr, "POST", &r("/join"), Some(t), None).await.0, 200);
    }

    // Roles: only the owner, only admin/member.
    let role = |u: u64| r(&format!("/members/{u}/role"));
    let admin = Some(json!({"role": "admin"}));
    assert_err(
        api(addr, "PUT", &role(nina_id), Some(&max), admin.clone()).await,
        403,
        ErrorCode::NotOwner,
    );
    assert_eq!(
        api(addr, "PUT", &role(max_id), Some(&olga), admin.clone())
            .await
            .0,
        204
    );
    assert_err(
        api(
            addr,
            "PUT",
            &role(nina_id),
            Some(&olga),
            Some(json!({"role": "owner"})),
        )
        .await,
        400,
        ErrorCode::InvalidRole,
    );
    assert_err(
        api(
            addr,
            "PUT",
            &role(nina_id),
            Some(&olga),
            Some(json!({"role": "boss"})),
        )
        .await,
        400,
        ErrorCode::MalformedFrame,
    );

    // PATCH: a field left out keeps its value; at least one is needed.
    assert_eq!(
        api(
            addr,
            "PATCH",
            &r(""),
            Some(&max),
            Some(json!({"topic": "new topic"}))
        )
        .await
        .0,
        204,
        "admins (not only the owner) update the room"
    );
    let (_, mine) = api(addr, "GET", "/api/me/rooms", Some(&nina), None).await;
    assert_eq!(mine["rooms"][0]["name"], "plaza");
    assert_eq!(mine["rooms"][0]["topic"], "new topic");
    assert_err(
        api(addr, "PATCH", &r(""), Some(&olga), Some(json!({}))).await,
        400,
        ErrorCode::MalformedFrame,
    );
    assert_err(
        api(
            addr,
            "PATCH",
            &r(""),
            Some(&olga),
            Some(json!({"name": "  "})),
        )
        .await,
        400,
        ErrorCode::InvalidRoomName,
    );
    assert_err(
        api(
            addr,
            "PATCH",
            &r(""),
            Some(&nina),
            Some(json!({"name": "mine"})),
        )
        .await,
        403,
        ErrorCode::NotAdmin,
    );
    assert_err(
        api(
            addr,
            "PATCH",
            "/api/rooms/4242",
            Some(&olga),
            Some(json!({"topic": "x"})),
        )
        .await,
        404,
        ErrorCode::RoomNotFound,
    );

    // Kick, then ban by username, unban; each twice.
    let member = r(&format!("/members/{nina_id}"));
    assert_err(
        api(addr, "DELETE", &member, Some(&nina), None).await,
        403,
        ErrorCode::NotAdmin,
    );
    assert_eq!(api(addr, "DELETE", &member, Some(&olga), None).await.0, 204);
    assert_err(
        api(addr, "DELETE", &member, Some(&olga), None).await,
        404,
        ErrorCode::TargetNotMember,
    );
    let by_name = Some(json!({"username": "NINA"}));
    assert_eq!(
        api(addr, "POST", &r("/bans"), Some(&olga), by_name.clone())
            .await
            .0,
        204
    );
    assert_err(
        api(addr, "POST", &r("/bans"), Some(&olga), by_name).await,
        409,
        ErrorCode::AlreadyBanned,
    );
    assert_err(
        api(addr, "POST", &r("/join"), Some(&nina), None).await,
        403,
        ErrorCode::Banned,
    );
    assert_err(
        api(
            addr,
            "POST",
            &r("/invitations"),
            Some(&olga),
            Some(json!({"user_id": nina_id})),
        )
        .await,
        409,
        ErrorCode::TargetBanned,
    );
    let (status, bans) = api(addr, "GET", &r("/bans"), Some(&max), None).await;
    assert_eq!(status, 200, "{bans}");
    assert_eq!(bans["users"][0]["user"], json!(nina_id));
    assert_eq!(bans["users"][0]["username"], "nina");
    let ban = r(&format!("/bans/{nina_id}"));
    assert_eq!(api(addr, "DELETE", &ban, Some(&olga), None).await.0, 204);
    assert_err(
        api(addr, "DELETE", &ban, Some(&olga), None).await,
        404,
        ErrorCode::NotBanned,
    );

    // Invitation declined; join request denied.
    let invite = Some(json!({"user_id": nina_id}));
    assert_eq!(
        api(
            addr,
            "POST",
            &r("/invitations"),
            Some(&olga),
            invite.clone()
        )
        .await
        .0,
        204
    );
    assert_err(
        api(addr, "POST", &r("/invitations"), Some(&olga), invite).await,
        409,
        ErrorCode::AlreadyInvited,
    );
    for body in [json!({"user_id": 987654}), json!({"username": "nobody"})] {
        assert_err(
            api(addr, "POST", &r("/invitations"), Some(&olga), Some(body)).await,
            404,
            ErrorCode::NoSuchUser,
        );
    }
    for body in [
        json!({}),
        json!({"user_id": nina_id, "username": "nina"}),
        json!({"user_id": null, "username": "nina"}),
        json!({"user_id": -1}),
    ] {
        assert_err(
            api(addr, "POST", &r("/invitations"), Some(&olga), Some(body)).await,
            400,
            ErrorCode::MalformedFrame,
        );
    }
    let decline = r("/invitation/decline");
    assert_eq!(api(addr, "POST", &decline, Some(&nina), None).await.0, 204);
    assert_err(
        api(addr, "POST", &decline, Some(&nina), None).await,
        404,
        ErrorCode::NotInvited,
    );
    assert_eq!(
        api(addr, "POST", &r("/join-requests"), Some(&nina), None)
            .await
            .0,
        204
    );
    assert_err(
        api(addr, "POST", &r("/join-requests"), Some(&nina), None).await,
        409,
        ErrorCode::AlreadyRequested,
    );
    let (status, pending) = api(addr, "GET", &r("/join-requests"), Some(&olga), None).await;
    assert_eq!(status, 200, "{pending}");
    assert_eq!(pending["room"], json!(id));
    assert_eq!(pending["users"][0]["username"], "nina");
    let deny = r(&format!("/join-requests/{nina_id}/deny"));
    assert_eq!(api(addr, "POST", &deny, Some(&max), None).await.0, 204);
    assert_err(
        api(addr, "POST", &deny, Some(&max), None).await,
        404,
        ErrorCode::NoSuchRequest,
    );

    // nina's notifications, newest first, and the badge.
    let (status, n) = api(addr, "GET", "/api/me/notifications", Some(&nina), None).await;
    assert_eq!(status, 200, "{n}");
    let kinds: Vec<&str> = n["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["request_denied", "invited", "unbanned", "banned", "kicked"]
    );
    assert_eq!(n["unread"], 5);
    assert_eq!(n["items"][0]["actor_name"], "max");
    assert_eq!(n["items"][0]["room"], json!(id));
    assert_eq!(n["items"][0]["room_name"], "plaza");
    assert_eq!(n["items"][0]["read"], false);
    let unbanned = n["items"][2]["id"].as_u64().unwrap();
    let (status, count) = api(
        addr,
        "POST",
        "/api/me/notifications/read",
        Some(&nina),
        Some(json!({"up_to": unbanned})),
    )
    .await;
    assert_eq!((status, count), (200, json!({"unread": 2})));
    let (_, unread) = api(
        addr,
        "GET",
        "/api/me/notifications?unread_only=true&limit=1",
        Some(&nina),
        None,
    )
    .await;
    assert_eq!(unread["items"][0]["kind"], "request_denied");
    assert_eq!(
        (unread["unread"].clone(), unread["has_more"].clone()),
        (json!(2), json!(true))
    );
    let before = unread["items"][0]["id"].as_u64().unwrap();
    let (_, older) = api(
        addr,
        "GET",
        &format!("/api/me/notifications?unread_only=true&before={before}"),
        Some(&nina),
        None,
    )
    .await;
    assert_eq!(older["items"][0]["kind"], "invited");
    assert_eq!(older["has_more"], false);
    assert_err(
        api(
            addr,
            "GET",
            "/api/me/notifications?limit=0",
            Some(&nina),
            None,
        )
        .await,
        400,
        ErrorCode::InvalidPaging,
    );

    // The room's events, kinds 5-8 by name.
    let events = bodies(addr, &olga, id).await;
    assert!(events.contains(&json!({"kind": "role_changed", "target": max_id, "target_name": "max", "role": "admin"})), "{events:?}");
    assert!(
        events.contains(&json!({"kind": "room_updated", "name": "plaza", "topic": "new topic"})),
        "{events:?}"
    );
    assert!(
        events
            .contains(&json!({"kind": "member_kicked", "target": nina_id, "target_name": "nina"})),
        "{events:?}"
    );
    assert!(
        events
            .contains(&json!({"kind": "member_banned", "target": nina_id, "target_name": "nina"})),
        "{events:?}"
    );
    assert!(!events.iter().any(|b| b["kind"] == "other"), "{events:?}");

    // The audit trail: admins only, newest first, paged.
    assert_err(
        api(addr, "GET", &r("/audit"), Some(&nina), None).await,
        403,
        ErrorCode::NotAMember,
    );
    let (status, audit) = api(addr, "GET", &r("/audit?limit=2"), Some(&max), None).await;
    assert_eq!(status, 200, "{audit}");
    assert_eq!(audit["items"][0]["action"], "request_denied");
    assert_eq!(audit["items"][0]["target"], json!(nina_id));
    assert_eq!(audit["items"][1]["action"], "join_requested");
    assert_eq!(audit["has_more"], true);

    // Succession and termination: the owner leaves, the admin inherits
    // (actor 0), then leaves too; the room is gone (410) and the room log
    // says so.
    assert_eq!(
        api(addr, "POST", &r("/leave"), Some(&olga), None).await.0,
        204
    );
    let events = bodies(addr, &max, id).await;
    assert_eq!(
        events.last().unwrap(),
        &json!({"kind": "role_changed", "target": max_id, "target_name": "max", "role": "owner"})
    );
    assert_eq!(
        api(addr, "POST", &r("/leave"), Some(&max), None).await.0,
        204
    );
    assert_err(
        api(addr, "GET", &r("/messages"), Some(&max), None).await,
        410,
        ErrorCode::RoomTerminated,
    );
    assert_err(
        api(addr, "POST", &r("/join-requests"), Some(&nina), None).await,
        410,
        ErrorCode::RoomTerminated,
    );
    let (status, log) = api(addr, "GET", "/api/me/room-log", Some(&max), None).await;
    assert_eq!(status, 200, "{log}");
    let item = &log["items"][0];
    assert_eq!(item["room"]["id"], json!(id));
    assert_eq!(
        (item["reason"].as_str(), item["terminated"].as_bool()),
        (Some("left"), Some(true))
    );
    assert!(item["left_at"].as_u64().is_some());
    let (_, log) = api(addr, "GET", "/api/me/room-log", Some(&nina), None).await;
    assert_eq!(log["items"][0]["reason"], "kicked");
    srv.stop().await;
}

/// Ids, sequence numbers and cursors are stored as signed 64-bit numbers
/// (the OpenAPI document says `format: int64`): one past 2^63 - 1 is
/// malformed (400, MALFORMED_FRAME) wherever it comes, path, query or body,
/// and 2^63 - 1 itself is a number like any other.
#[tokio::test]
async fn numbers_past_63_bits_are_malformed_in_paths_queries_and_bodies() {
    let srv = TestServer::start().await;
    let addr = srv.addr_for(Transport::Ws);
    let (_, token) = register(addr, "ivan").await;
    let t = Some(token.as_str());
    let (status, room) = api(addr, "POST", "/api/rooms", t, Some(json!({"name": "ids"}))).await;
    assert_eq!(status, 201, "{room}");
    let id = room["id"].as_u64().unwrap();
    let (max, over) = (i64::MAX as u64, i64::MAX as u64 + 1);
    let malformed = ErrorCode::MalformedFrame;
    for path in [
        format!("/api/rooms/{over}/join"),
        format!("/api/rooms/{over}/members"),
        format!("/api/rooms/{id}/messages?before={over}"),
        format!("/api/rooms/{id}/audit?before={over}"),
        format!("/api/me/notifications?before={over}"),
    ] {
        let method = if path.ends_with("/join") {
            "POST"
        } else {
            "GET"
        };
        assert_err(api(addr, method, &path, t, None).await, 400, malformed);
    }
    for path in [
        format!("/api/rooms/{over}/members/1"),
        format!("/api/rooms/{id}/members/{over}"),
        format!("/api/rooms/{id}/bans/{over}"),
    ] {
        assert_err(api(addr, "DELETE", &path, t, None).await, 400, malformed);
    }
    let read = "/api/me/notifications/read";
    let (status, v) = api(addr, "POST", read, t, Some(json!({"up_to": over}))).await;
    assert_err((status, v), 400, malformed);
    // The largest number that fits is an id like any other.
    let max_room = format!("/api/rooms/{max}/join");
    assert_err(
        api(addr, "POST", &max_room, t, None).await,
        404,
        ErrorCode::RoomNotFound,
    );
    let history = format!("/api/rooms/{id}/messages?before={max}");
    assert_eq!(api(addr, "GET", &history, t, None).await.0, 200);
    let (status, v) = api(addr, "POST", read, t, Some(json!({"up_to": max}))).await;
    assert_eq!((status, &v["unread"]), (200, &json!(0)), "{v}");
    srv.stop().await;
}

#[tokio::test]
async fn http_messages_are_rate_limited_per_user_with_the_connections() {
    let srv = TestServer::start_with(|c| {
        c.rate_limit_per_sec = 1;
        c.rate_limit_burst = 3;
    })
    .await;
    let addr = srv.addr_for(Transport::Ws);
    let (_, token) = register(addr, "chatty").await;
    let (_, room) = api(
        addr,
        "POST",
        "/api/rooms",
        Some(&token),
        Some(json!({"name": "r"})),
    )
    .await;
    let path = format!("/api/rooms/{}/messages", room["id"]);
    let post = |t: String, n: u32| {
        let path = path.clone();
        async move {
            api(
                addr,
                "POST",
                &path,
                Some(&t),
                Some(json!({"text": format!("m{n}")})),
            )
            .await
        }
    };
    // A second token of the same user, taken before the burst is spent.
    let (status, login) = api(
        addr,
        "POST",
        "/api/login",
        None,
        Some(json!({"username": "chatty", "password": "password123"})),
    )
    .await;
    assert_eq!(status, 200);
    let second = login["token"].as_str().unwrap().to_owned();
    for n in 0..3 {
        let (status, v) = post(token.clone(), n).await;
        assert_eq!(status, 201, "the burst: {v}");
    }
    assert_err(post(token.clone(), 3).await, 429, ErrorCode::RateLimited);
    // The other token does not buy a new bucket: the limit is per user.
    assert_err(post(second.clone(), 4).await, 429, ErrorCode::RateLimited);
    // Another user has their own bucket; the user's connections share
    // theirs (tests/accounts.rs has the whole budget across doors).
    let (_, other) = register(addr, "quiet").await;
    let join = format!("/api/rooms/{}/join", room["id"]);
    assert_eq!(api(addr, "POST", &join, Some(&other), None).await.0, 200);
    assert_eq!(post(other, 0).await.0, 201);
    let sdk = srv.door(Transport::Tcp).connect().await;
    sdk.login("chatty", "password123").await.unwrap();
    let refused = sdk
        .send_message(RoomId(room["id"].as_u64().unwrap()), "over tcp")
        .await
        .expect_err("a connection draws on the user's bucket");
    assert_eq!(refused.code(), Some(ErrorCode::RateLimited));
    // The bucket refills at the configured rate (1/s): a second later, by
    // the server's clock.
    srv.handle
        .as_ref()
        .expect("running")
        .clock()
        .advance(Duration::from_millis(1000));
    assert_eq!(post(second, 5).await.0, 201);
    srv.stop().await;
}

#[tokio::test]
async fn http_logins_never_show_the_user_online() {
    let srv = TestServer::start().await;
    let addr = srv.addr_for(Transport::Ws);
    let watcher = srv.door(Transport::Tcp).connect().await;
    watcher.register("watcher", "password123").await.unwrap();
    let room = watcher
        .create_room("lookout", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    let (ghost_id, ghost) = register(addr, "ghost").await;
    let join = format!("/api/rooms/{}/join", room.0);
    assert_eq!(api(addr, "POST", &join, Some(&ghost), None).await.0, 200);
    // The ghost logs in over HTTP again and again while the watcher looks
    // at the member list: it must never see the ghost online, since no
    // connection of theirs is open. (One-shot sessions never attach to the
    // shards, so nothing detaches them either: were one attached, the ghost
    // would stay online for good and this fails at once. The old attach-
    // then-detach flicker lasted microseconds, too short to catch here.)
    let logins = tokio::spawn(async move {
        for _ in 0..25 {
            let (status, _) = api(
                addr,
                "POST",
                "/api/login",
                None,
                Some(json!({"username": "ghost", "password": "password123"})),
            )
            .await;
            assert_eq!(status, 200);
        }
    });
    let mut looks = 0;
    while !logins.is_finished() {
        let members = watcher.members(room).await.unwrap();
        let ghost = members
            .iter()
            .find(|m| m.user.0 == ghost_id)
            .expect("ghost is a member");
        assert!(!ghost.online, "an HTTP login showed the user online");
        looks += 1;
    }
    logins.await.expect("logins succeed");
    assert!(looks > 5, "the watcher looked only {looks} times");
    srv.stop().await;
}
