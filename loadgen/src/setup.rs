//! Bulk set-up before a measurement: users (registered, or logged in when
//! they already exist, so repeated runs against one server reuse them) and
//! rooms with their members. Every user ends up with a session token, so
//! the measured connections authenticate with HELLO alone — no password
//! hashing during a measurement.
//!
//! Registration is argon2id-expensive on the server: for large set-ups run
//! `confabd` with cheap KDF settings (`--kdf-memory-kib 8 --kdf-iterations
//! 1`); the reports say so.

use std::time::Duration;

use anyhow::{bail, Context};
use confab_protocol::{ErrorCode, Request, RoomId, Seq, ServerMsg, Visibility};
use futures_util::StreamExt;

use crate::net::{self, Connector, ServerError};

/// The password of every load-generator account.
pub const PASSWORD: &str = "loadgen-password";

/// Connections in flight during set-up.
pub const SETUP_CONCURRENCY: usize = 64;

/// Most time one user's set-up may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// A user with a live session token.
#[derive(Debug, Clone)]
pub struct User {
    pub token: String,
}

/// Users `0..n` and rooms `0..rooms`; user `u < members` belongs to room
/// `u % rooms` (user `r < rooms` owns room `r`); other users belong to no
/// room.
pub struct Population {
    pub users: Vec<User>,
    pub rooms: Vec<RoomId>,
}

pub fn username(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i}")
}

/// Creates (or reuses) `n` users and `rooms` rooms; the first `members`
/// users are spread over the rooms. `conn_base` offsets the connection
/// numbers (source addresses) used.
pub async fn populate(
    connector: &Connector,
    prefix: &str,
    n: usize,
    rooms: usize,
    members: usize,
    conn_base: usize,
    mut progress: impl FnMut(usize),
) -> anyhow::Result<Population> {
    anyhow::ensure!(members <= n, "members ({members}) exceed users ({n})");
    anyhow::ensure!(
        rooms == 0 || rooms <= members,
        "every room needs an owner among the members"
    );
    let tag = crate::clock::now_ns() ^ std::process::id() as u64;
    // Owners first: they create the rooms the others join.
    let mut users = Vec::with_capacity(n);
    let mut room_ids = Vec::with_capacity(rooms);
    let mut owners = futures_util::stream::iter(0..rooms)
        .map(|u| {
            let name = format!("lg {prefix} {tag:x} {u}");
            let connector = connector.clone();
            let prefix = prefix.to_owned();
            async move {
                timed(user_step(
                    &connector,
                    &prefix,
                    u,
                    conn_base + u,
                    Some(Action::Create(name)),
                ))
                .await
            }
        })
        .buffered(SETUP_CONCURRENCY);
    while let Some(r) = owners.next().await {
        let (user, room) = r?;
        room_ids.push(room.context("room creation returned no room")?);
        users.push(user);
        progress(users.len());
    }
    drop(owners);
    let rooms_ref = &room_ids;
    let mut rest = futures_util::stream::iter(rooms..n)
        .map(|u| {
            let connector = connector.clone();
            let prefix = prefix.to_owned();
            let action = (u < members).then(|| Action::Join(rooms_ref[u % rooms_ref.len()]));
            async move { timed(user_step(&connector, &prefix, u, conn_base + u, action)).await }
        })
        .buffered(SETUP_CONCURRENCY);
    while let Some(r) = rest.next().await {
        users.push(r?.0);
        progress(users.len());
    }
    drop(rest);
    Ok(Population {
        users,
        rooms: room_ids,
    })
}

enum Action {
    Create(String),
    Join(RoomId),
}

async fn timed<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::time::timeout(STEP_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| bail!("set-up step timed out after {STEP_TIMEOUT:?}"))
}

/// Registers or logs in user `u`, then creates or joins a room.
async fn user_step(
    connector: &Connector,
    prefix: &str,
    u: usize,
    conn_no: usize,
    action: Option<Action>,
) -> anyhow::Result<(User, Option<RoomId>)> {
    let (mut rd, mut wr) = net::open(connector, conn_no, 4096, None).await?;
    let name = username(prefix, u);
    let register = Request::Register {
        username: name.clone(),
        password: PASSWORD.into(),
    };
    wr.send(2, &register).await?;
    let session = match rd.reply(2).await {
        Ok(msg) => msg,
        Err(e) if server_code(&e) == Some(ErrorCode::UsernameTaken as u16) => {
            let login = Request::Login {
                username: name.clone(),
                password: PASSWORD.into(),
            };
            wr.send(3, &login).await?;
            rd.reply(3)
                .await
                .with_context(|| format!("logging in {name}"))?
        }
        Err(e) => return Err(e.context(format!("registering {name}"))),
    };
    let ServerMsg::Session { token, .. } = session else {
        bail!("expected SESSION for {name}, got {session:?}");
    };
    let room = match action {
        None => None,
        Some(Action::Create(room_name)) => {
            let create = Request::CreateRoom {
                name: room_name,
                topic: "load generator".into(),
                visibility: Visibility::Public,
                members: Vec::new(),
            };
            wr.send(4, &create).await?;
            match rd.reply(4).await? {
                ServerMsg::Room(info) => Some(info.id),
                other => bail!("expected ROOM, got {other:?}"),
            }
        }
        Some(Action::Join(room)) => {
            join(&mut rd, &mut wr, room, 4).await?;
            Some(room)
        }
    };
    Ok((
        User {
            token: token.into_string(),
        },
        room,
    ))
}

/// JOIN_ROOM; already being a member is fine.
pub async fn join(
    rd: &mut net::FrameReader,
    wr: &mut net::FrameWriter,
    room: RoomId,
    req_id: u32,
) -> anyhow::Result<()> {
    wr.send(req_id, &Request::JoinRoom { room }).await?;
    match rd.reply(req_id).await {
        Ok(_) => Ok(()),
        Err(e) if server_code(&e) == Some(ErrorCode::AlreadyMember as u16) => Ok(()),
        Err(e) => Err(e.context(format!("joining room {room}"))),
    }
}

/// The code of an ERROR reply inside `e`, if that is what it is.
/// The room's latest seq, read with HISTORY on a connection of a member
/// (`token`; `conn_no` picks its source address).
pub async fn last_seq(
    connector: &Connector,
    token: &str,
    room: RoomId,
    conn_no: usize,
) -> anyhow::Result<Seq> {
    let (mut rd, mut wr) = net::open(connector, conn_no, 4096, Some(token.to_owned())).await?;
    let history = Request::History {
        room,
        before: Seq(0),
        limit: 1,
    };
    wr.send(2, &history).await?;
    match rd.reply(2).await? {
        ServerMsg::HistoryPage { events, .. } => Ok(events.first().map_or(Seq(0), |e| e.seq)),
        other => bail!("expected HISTORY_PAGE, got {other:?}"),
    }
}

pub fn server_code(e: &anyhow::Error) -> Option<u16> {
    e.downcast_ref::<ServerError>().map(|s| s.code)
}
