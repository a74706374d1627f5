//! A minimal terminal chat client.
//!
//! ```text
//! cargo run -p confab-sdk --example chat -- --url confab://127.0.0.1:7400 \
//!     --user alice --password secret123 --room general
//! ```
//!
//! Any URL the SDK speaks works: `confabs://127.0.0.1:7443` (TLS),
//! `ws://127.0.0.1:7480/ws`, `wss://127.0.0.1:7443/ws`. For a server with a
//! self-signed certificate add `--ca-cert confab-data/self-signed-cert.pem`
//! or `--fingerprint AB:CD:…` (both printed by `confabd --tls-self-signed`).
//!
//! Registers (or logs in if the name is taken), finds the room by name or
//! creates it, joins it, prints the last 20 events, then sends every stdin
//! line as a message while printing the room's events as they arrive.

use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};

use confab_sdk::{
    Client, ConnectOptions, ErrorCode, Event, EventBody, ReconnectPolicy, RoomEvent, RoomId,
    RoomInfo, Seq, Visibility,
};

const USAGE: &str = "usage: chat [--url confab://127.0.0.1:7400] [--ca-cert PEM | --fingerprint SHA256] --user NAME --password PASSWORD --room ROOM";

struct Args {
    url: String,
    ca_cert: Option<String>,
    fingerprint: Option<String>,
    user: String,
    password: String,
    room: String,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut url, mut user, mut password, mut room) = (None, None, None, None);
    let (mut ca_cert, mut fingerprint) = (None, None);
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--url" => &mut url,
            "--user" => &mut user,
            "--password" => &mut password,
            "--room" => &mut room,
            "--ca-cert" => &mut ca_cert,
            "--fingerprint" => &mut fingerprint,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        };
        *slot = Some(args.next().ok_or_else(|| format!("{flag} needs a value"))?);
    }
    Ok(Args {
        url: url.unwrap_or_else(|| "confab://127.0.0.1:7400".to_owned()),
        ca_cert,
        fingerprint,
        user: user.ok_or("--user is required")?,
        password: password.ok_or("--password is required")?,
        room: room.ok_or("--room is required")?,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(problem) => {
            if !problem.is_empty() {
                eprintln!("chat: {problem}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };

    let mut options = ConnectOptions::new()
        .with_event_buffer(1024)
        .with_reconnect(ReconnectPolicy::exponential(
            Duration::from_millis(250),
            Duration::from_secs(10),
        ));
    if let Some(path) = &args.ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("reading {path}"))?;
        options = options.with_trusted_pem(pem);
    }
    if let Some(fingerprint) = &args.fingerprint {
        options = options.with_fingerprint(fingerprint)?;
    }
    let client = Client::connect(&args.url, options)
        .await
        .with_context(|| format!("connecting to {}", args.url))?;

    match client.register(&args.user, &args.password).await {
        Ok(session) => eprintln!("* registered as {}", session.username),
        Err(e) if e.code() == Some(ErrorCode::UsernameTaken) => {
            let session = client
                .login(&args.user, &args.password)
                .await
                .context("logging in")?;
            eprintln!("* logged in as {}", session.username);
        }
        Err(e) => return Err(e).context("registering"),
    }

    let room = enter_room(&client, &args.room).await?;
    eprintln!("* in #{} ({}): {}", room.name, room.id, room.topic);

    // History comes newest first; print oldest first.
    let page = client
        .history(room.id, None, 20)
        .await
        .context("loading history")?;
    let mut shown = Seq(0);
    for ev in page.events.iter().rev() {
        print_event(ev);
        shown = shown.max(ev.seq);
    }
    // Live events up to what history showed are duplicates from now on, and
    // a reconnect resumes after them.
    client.track_room(room.id, shown).await;

    let printer = tokio::spawn(print_events(client.clone(), room.id, shown));

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await.context("reading stdin")? {
        if line.trim().is_empty() {
            continue;
        }
        if let Err(e) = client.send_message(room.id, &line).await {
            eprintln!("* not sent: {e}");
        }
    }
    client.close().await;
    let _ = printer.await;
    Ok(())
}

/// Finds the room by exact name (creating it, public, if there is none) and
/// makes sure we are a member.
async fn enter_room(client: &Client, name: &str) -> anyhow::Result<RoomInfo> {
    const PAGE: u32 = 200;
    let mut offset = 0;
    loop {
        let page = client
            .list_rooms(name, offset, PAGE)
            .await
            .context("listing rooms")?;
        let rooms = page.rooms;
        if let Some(room) = rooms.iter().find(|r| r.name == name) {
            return match client.join_room(room.id).await {
                Ok(info) => Ok(info),
                Err(e) if e.code() == Some(ErrorCode::AlreadyMember) => Ok(room.clone()),
                Err(e) => Err(e).context("joining the room"),
            };
        }
        if rooms.is_empty() {
            break;
        }
        offset += rooms.len() as u32;
        if offset >= page.total {
            break;
        }
    }
    let room = client
        .create_room(name, "", Visibility::Public)
        .await
        .context("creating the room")?;
    if room.name != name {
        bail!("the server stored the room as {:?}", room.name);
    }
    Ok(room)
}

async fn print_events(client: Client, room: RoomId, mut shown: Seq) {
    let mut events = client.events();
    while let Some(event) = events.next().await {
        match event {
            Event::Room(ev) if ev.room == room && ev.seq > shown => {
                shown = ev.seq;
                print_event(&ev);
            }
            Event::Room(_) => {}
            Event::ResumeGap {
                room: gap_room,
                last_seq,
            } if gap_room == room => {
                eprintln!("* missed events up to #{last_seq} while away; reloading");
                shown = reload(&client, room, shown, last_seq).await;
            }
            Event::ResumeGap { .. } => {}
            Event::Overflow(overflow) => match overflow.rooms.get(&room) {
                Some(&last_seq) => {
                    eprintln!("* fell behind by {} events; reloading", overflow.dropped);
                    shown = reload(&client, room, shown, last_seq).await;
                }
                None => eprintln!("* fell behind by {} events", overflow.dropped),
            },
            Event::Closed { code, message } => {
                eprintln!("* server closed the connection: {code}: {message}")
            }
            Event::Notification(n) => eprintln!(
                "* notification #{}: {} in {} from {}",
                n.id,
                n.kind.name().unwrap_or("(newer kind)"),
                n.room_name,
                n.actor_name
            ),
            Event::RoomAnnounced(info) => {
                eprintln!("* new room {} ({}): {}", info.name, info.id, info.topic)
            }
            Event::Disconnected => eprintln!("* disconnected"),
            Event::Reconnected => eprintln!("* reconnected"),
            _ => {}
        }
    }
}

/// Prints the recent events after `shown` that were missed up to
/// `last_seq`; returns the new last shown seq.
async fn reload(client: &Client, room: RoomId, shown: Seq, last_seq: Seq) -> Seq {
    match client.history(room, None, 20).await {
        Ok(page) => {
            for ev in page.events.iter().rev().filter(|ev| ev.seq > shown) {
                print_event(ev);
            }
            shown.max(last_seq)
        }
        Err(e) => {
            eprintln!("* could not reload history: {e}");
            shown
        }
    }
}

fn print_event(ev: &RoomEvent) {
    match &ev.body {
        EventBody::Message {
            text,
            edited_at: None,
            ..
        } => println!("[{}] {}: {}", ev.seq, ev.actor_name, text),
        EventBody::Message {
            text,
            edited_at: Some(_),
            ..
        } => println!("[{}] {}: {} (edited)", ev.seq, ev.actor_name, text),
        EventBody::MessageEdited { target, text, .. } if !text.is_empty() => {
            println!("[{}] * {} edited [{target}]: {text}", ev.seq, ev.actor_name)
        }
        EventBody::MessageEdited { target, .. } => {
            println!("[{}] * {} edited [{target}]", ev.seq, ev.actor_name)
        }
        EventBody::MessageDeleted { target } => {
            println!("[{}] * {} deleted [{target}]", ev.seq, ev.actor_name)
        }
        EventBody::Tombstone => println!("[{}] {}: (deleted)", ev.seq, ev.actor_name),
        EventBody::MemberJoined => println!("[{}] * {} joined", ev.seq, ev.actor_name),
        EventBody::MemberLeft => println!("[{}] * {} left", ev.seq, ev.actor_name),
        EventBody::RoomCreated { name, .. } => {
            println!("[{}] * {} created #{}", ev.seq, ev.actor_name, name)
        }
        EventBody::MemberKicked { target_name, .. } => {
            println!("[{}] * {} kicked {}", ev.seq, ev.actor_name, target_name)
        }
        EventBody::MemberBanned { target_name, .. } => {
            println!("[{}] * {} banned {}", ev.seq, ev.actor_name, target_name)
        }
        EventBody::RoleChanged {
            target_name, role, ..
        } => {
            println!("[{}] * {} is now {:?}", ev.seq, target_name, role)
        }
        EventBody::RoomUpdated { name, topic } => {
            println!("[{}] * room is now {name}: {topic}", ev.seq)
        }
        EventBody::RoomTerminated => println!("[{}] * the room has terminated", ev.seq),
        EventBody::Unknown { kind, .. } => println!("[{}] * event of kind {kind}", ev.seq),
    }
}
