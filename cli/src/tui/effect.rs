//! What the state machine asks the outside world to do ([`Effect`]) and
//! what comes back ([`Update`]); [`execute`] is the only part that talks
//! to the server.

use confab_sdk::{
    Client, Error, HistoryPage, Member, MessageAck, RoomId, RoomInfo, Seq, Sticker, UnreadSummary,
};

use super::command::Slash;
use crate::exit::{describe, is_session_gone};

/// How many events a room's first page and each older page hold.
pub const PAGE: u32 = 50;

/// Work for [`execute`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// MY_ROOMS with unread counts, and the sticker catalogue.
    LoadRooms,
    /// A room's newest page and its members.
    LoadRoom(RoomId),
    /// The page before `before`.
    LoadOlder(RoomId, Seq),
    LoadMembers(RoomId),
    /// A message typed into the input, `local` its id until acknowledged.
    Send {
        local: u64,
        room: RoomId,
        text: String,
    },
    MarkRead(RoomId, Seq),
    /// Started (`true`) or stopped typing a message in the room.
    Typing(RoomId, bool),
    /// A slash command, in the room that was current (with `/edit` and
    /// `/delete` of "the last message" already turned into a seq).
    Slash(Option<RoomId>, Slash),
    ChangePassword {
        current: String,
        new: String,
    },
    /// The user asked to quit.
    Quit,
}

/// A titled list shown over the message pane (`/help`, `/bans`, …) until
/// Esc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panel {
    pub title: String,
    pub lines: Vec<String>,
}

/// The outcome of an [`Effect`], for [`super::app::App::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    Rooms(Vec<RoomInfo>, UnreadSummary),
    Stickers(Vec<Sticker>),
    History(HistoryPage),
    Members(RoomId, Vec<Member>),
    /// A room the user is now in (joined, created, direct chat opened,
    /// invitation accepted): listed and shown.
    Entered(RoomInfo),
    Left(RoomId),
    Sent(u64, MessageAck),
    SendFailed(u64, String),
    Panel(Panel),
    /// Something worked; shown in the status line.
    Done(String),
    /// Something failed; shown in the status line as an error.
    Failed(String),
    NotificationsUnread(u32),
    /// The token no longer works (or /logout): the UI says so and stops
    /// talking to the server.
    SessionEnded(String),
    LoggedOut,
}

fn failed(e: &Error) -> Update {
    if is_session_gone(e) {
        Update::SessionEnded(format!("{}: run `confab login` again", describe(e)))
    } else {
        Update::Failed(describe(e))
    }
}

/// Runs one effect against the server; every failure becomes an
/// [`Update`], never a panic or an early exit.
pub async fn execute(client: &Client, effect: Effect) -> Vec<Update> {
    match run(client, effect).await {
        Ok(updates) => updates,
        Err(e) => vec![failed(&e)],
    }
}

async fn run(client: &Client, effect: Effect) -> Result<Vec<Update>, Error> {
    Ok(match effect {
        Effect::LoadRooms => {
            let rooms = client.my_rooms().await?;
            let unread = client.unread().await?;
            let stickers = client.list_stickers().await.unwrap_or_default();
            let notes = client.notifications(None, 1, true).await?;
            vec![
                Update::Rooms(rooms, unread),
                Update::Stickers(stickers),
                Update::NotificationsUnread(notes.unread),
            ]
        }
        Effect::LoadRoom(room) => {
            let page = client.history(room, None, PAGE).await?;
            if let Some(newest) = page.events.first() {
                client.track_room(room, newest.seq).await;
            }
            let members = client.members(room).await?;
            vec![Update::History(page), Update::Members(room, members)]
        }
        Effect::LoadOlder(room, before) => {
            vec![Update::History(
                client.history(room, Some(before), PAGE).await?,
            )]
        }
        Effect::LoadMembers(room) => vec![Update::Members(room, client.members(room).await?)],
        Effect::Send { local, room, text } => match send(client, room, &text).await {
            Ok(ack) => vec![Update::Sent(local, ack)],
            Err(e) if is_session_gone(&e) => vec![failed(&e)],
            Err(Error::Disconnected) => vec![Update::SendFailed(
                local,
                "connection lost: it may not have been sent".to_owned(),
            )],
            Err(e) => vec![Update::SendFailed(local, describe(&e))],
        },
        Effect::Typing(room, typing) => {
            // A lost typing notice matters to nobody: no status for it.
            let _ = if typing {
                client.typing_start(room).await
            } else {
                client.typing_stop(room).await
            };
            vec![]
        }
        Effect::MarkRead(room, seq) => {
            client.set_read_marker(room, seq).await?;
            vec![]
        }
        Effect::ChangePassword { current, new } => {
            client.change_password(&current, &new).await?;
            vec![Update::Done(
                "password changed: your other sessions were logged out".to_owned(),
            )]
        }
        Effect::Slash(room, cmd) => super::slash::slash(client, room, cmd).await?,
        Effect::Quit => vec![],
    })
}

/// Sends `text` with its marks turned into formatting, or as typed
/// when it has none (or they would not pass the server's span rules).
async fn send(client: &Client, room: RoomId, text: &str) -> Result<MessageAck, Error> {
    let rich = super::markup::parse(text);
    if rich.spans().is_empty() || rich.check().is_err() {
        client.send_message(room, text).await
    } else {
        client.send_rich(room, &rich).await
    }
}
