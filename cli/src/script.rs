//! The scriptable commands: `login`, `register`, `logout`, `send`,
//! `tail`, `rooms`, `history`. Each prints its result on stdout (lines,
//! or JSON with `--json`) and its failure on stderr, and returns a
//! [`Failure`] whose kind is the exit code.

use std::io::{BufRead, Write};

use confab_sdk::{Client, Error, Event, RoomId, Seq};
use serde_json::json;

use crate::connect::{resolve_room, Target};
use crate::exit::{is_session_gone, Failure, Kind};
use crate::session::{self, Stored};
use crate::show;

/// How `login` and `register` get the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordFrom {
    /// The terminal, without echo.
    Terminal,
    /// The first line of standard input (for scripts).
    Stdin,
}

/// Asks for a username on the terminal when none was given.
pub fn ask_username(given: Option<String>) -> Result<String, Failure> {
    if let Some(name) = given {
        return Ok(name);
    }
    eprint!("username: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let name = line.trim().to_owned();
    if name.is_empty() {
        return Err(Failure::usage("no username given"));
    }
    Ok(name)
}

/// Reads a password as `from` says.
pub fn read_password(from: PasswordFrom, prompt: &str) -> Result<String, Failure> {
    match from {
        PasswordFrom::Terminal => rpassword::prompt_password(prompt).map_err(|e| {
            Failure::usage(format!(
                "cannot read the password from a terminal ({e}): use --password-stdin"
            ))
        }),
        PasswordFrom::Stdin => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            Ok(line.trim_end_matches(['\r', '\n']).to_owned())
        }
    }
}

/// Logs in (or registers) at the target's server and stores the session.
pub async fn login(
    target: &Target,
    username: &str,
    password: &str,
    register: bool,
) -> Result<Stored, Failure> {
    let url = target.url(session::load().as_ref());
    let client = Client::connect(&url, target.options()?).await?;
    let result = if register {
        client.register(username, password).await
    } else {
        client.login(username, password).await
    };
    client.close().await;
    let session = result?;
    let stored = Stored {
        url,
        username: session.username,
        token: session.token,
    };
    session::save(&stored)?;
    Ok(stored)
}

/// Ends the stored session on the server (if it still works) and removes
/// it from disk.
pub async fn logout(target: &Target) -> Result<(), Failure> {
    match target.connect_stored(false).await {
        Ok((client, _)) => {
            // LOGOUT's reply may race the server's CLOSE; either way the
            // token is revoked.
            let _ = client.logout().await;
            client.close().await;
        }
        Err(f) if f.kind == Kind::Auth => {}
        Err(f) => {
            eprintln!("confab: {f}; removing the stored session anyway");
        }
    }
    if !session::remove()? {
        eprintln!("confab: no stored session");
    }
    Ok(())
}

/// `send ROOM TEXT`: sends one message; `--json` prints its ack.
pub async fn send(target: &Target, room: &str, text: &str, as_json: bool) -> Result<(), Failure> {
    if text.trim().is_empty() {
        return Err(Failure::usage("the message is empty"));
    }
    let (client, _) = target.connect_stored(false).await?;
    let room = resolve_room(&client, room).await?;
    let ack = client.send_message(room.id, text).await?;
    if as_json {
        println!(
            "{}",
            json!({"room": ack.room.0, "seq": ack.seq.0, "at": ack.at, "time": show::rfc3339(ack.at)})
        );
    }
    client.close().await;
    Ok(())
}

/// `rooms`: the caller's rooms with their unread counts.
pub async fn rooms(target: &Target, as_json: bool) -> Result<(), Failure> {
    let (client, _) = target.connect_stored(false).await?;
    let rooms = client.my_rooms().await?;
    let unread = client.unread().await?;
    let mut out = std::io::stdout().lock();
    for room in &rooms {
        let count = unread
            .rooms
            .iter()
            .find(|s| s.room == room.id)
            .map_or(0, |s| s.unread);
        let direct = room.direct_with.as_ref().map(|d| d.username.clone());
        if as_json {
            let v = json!({
                "id": room.id.0,
                "name": room.name,
                "topic": room.topic,
                "public": room.visibility == confab_sdk::Visibility::Public,
                "members": room.member_count,
                "unread": count,
                "direct_with": direct,
                "last_seq": room.last_seq.0,
            });
            writeln!(out, "{v}")?;
        } else {
            let kind = match (&direct, room.visibility) {
                (Some(_), _) => "direct",
                (None, confab_sdk::Visibility::Public) => "public",
                (None, confab_sdk::Visibility::Private) => "private",
            };
            writeln!(
                out,
                "#{}\t{}\t{kind}\t{} members\t{count} unread",
                room.id.0, room.name, room.member_count
            )?;
        }
    }
    client.close().await;
    Ok(())
}

/// `history ROOM --limit N`: the room's last `limit` events, oldest first.
pub async fn history(
    target: &Target,
    room: &str,
    limit: u32,
    as_json: bool,
) -> Result<(), Failure> {
    if limit == 0 {
        return Err(Failure::usage("--limit must be at least 1"));
    }
    let (client, _) = target.connect_stored(false).await?;
    let room = resolve_room(&client, room).await?;
    let events = newest_events(&client, room.id, limit).await?;
    let mut out = std::io::stdout().lock();
    for ev in events.iter().rev() {
        print_event(&mut out, ev, as_json)?;
    }
    client.close().await;
    Ok(())
}

/// The newest `limit` events of `room`, newest first, paging as needed.
async fn newest_events(
    client: &Client,
    room: RoomId,
    limit: u32,
) -> Result<Vec<confab_sdk::RoomEvent>, Error> {
    let mut events = Vec::new();
    let mut before: Option<Seq> = None;
    while (events.len() as u32) < limit {
        let want = (limit - events.len() as u32).min(200);
        let page = client.history(room, before, want).await?;
        before = page.events.last().map(|e| e.seq);
        let more = page.has_more && !page.events.is_empty();
        events.extend(page.events);
        if !more {
            break;
        }
    }
    Ok(events)
}

fn print_event(
    out: &mut impl Write,
    ev: &confab_sdk::RoomEvent,
    as_json: bool,
) -> std::io::Result<()> {
    if as_json {
        writeln!(out, "{}", show::json(ev))?;
    } else {
        writeln!(out, "{}", show::line(ev))?;
    }
    out.flush()
}

/// `tail ROOM`: the last `backlog` events, then every new one as it comes,
/// until interrupted (exit 0) or the session ends (exit 4). Reconnects
/// with resume, saying so on stderr.
pub async fn tail(target: &Target, room: &str, backlog: u32, as_json: bool) -> Result<(), Failure> {
    let (client, _) = target.connect_stored(true).await?;
    let room = resolve_room(&client, room).await?;
    let mut last = room.last_seq;
    if backlog > 0 {
        let events = newest_events(&client, room.id, backlog).await?;
        let mut out = std::io::stdout().lock();
        for ev in events.iter().rev() {
            print_event(&mut out, ev, as_json)?;
        }
        last = last.max(events.first().map_or(last, |e| e.seq));
    }
    client.track_room(room.id, last).await;
    let mut events = client.events();
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        match event {
            Some(Event::Room(ev)) if ev.room == room.id && ev.seq > last => {
                last = ev.seq;
                print_event(&mut std::io::stdout().lock(), &ev, as_json)?;
            }
            Some(Event::Disconnected) => eprintln!("confab: disconnected, reconnecting…"),
            Some(Event::Reconnected) => eprintln!("confab: reconnected"),
            Some(Event::ResumeGap { room: r, .. }) if r == room.id => {
                eprintln!("confab: some events were missed while disconnected");
            }
            Some(Event::Closed { code, message }) => {
                let e = Error::Closed { code, message };
                if is_session_gone(&e) {
                    return Err(Failure::from(e));
                }
                eprintln!("confab: {}", crate::exit::describe(&e));
            }
            Some(_) => {}
            None => {
                return Err(Failure::new(
                    Kind::Unreachable,
                    "the connection ended and could not be re-established",
                ))
            }
        }
    }
}
