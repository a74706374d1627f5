//! The UI's state and how it changes: server events ([`App::on_event`])
//! and the outcomes of effects ([`App::apply`]) in, the state changed and
//! further [`Effect`]s out. Keys are in `keys.rs`. Nothing here does I/O,
//! so every rule is tested without a terminal or a server.

use std::collections::{BTreeMap, BTreeSet};

use confab_sdk::{
    Event, EventBody, NotificationKind, Presence, RoomEvent, RoomId, RoomInfo, Sticker, UserId,
};

use super::effect::{Effect, Panel, Update};
use super::input::Editor;
pub use super::room::{Body, Entry, RoomView};
use crate::show;

/// The connection as the status line shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conn {
    Connected,
    Reconnecting,
    /// For good: why.
    Disconnected(String),
}

/// Where a message typed into the input stands until its room event shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutState {
    Sending,
    /// Typed while disconnected: sent on reconnect.
    Queued,
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub local: u64,
    pub room: RoomId,
    pub text: String,
    pub state: OutState,
}

/// A question the input line is answering instead of chatting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    CurrentPassword,
    NewPassword(String),
}

/// The whole UI state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub me: UserId,
    pub username: String,
    pub server: String,
    /// Group rooms by name, then direct chats by the other's name.
    pub rooms: Vec<RoomView>,
    pub current: Option<RoomId>,
    pub stickers: BTreeMap<String, Sticker>,
    pub conn: Conn,
    /// The last outcome: text and whether it is an error.
    pub status: Option<(String, bool)>,
    pub notifications_unread: u32,
    pub editor: Editor,
    pub panel: Option<Panel>,
    /// Lines of the panel scrolled past (PageDown).
    pub panel_scroll: usize,
    pub prompt: Option<Prompt>,
    pub outgoing: Vec<Outgoing>,
    pub next_local: u64,
    /// Lines of the message pane, for PageUp/PageDown.
    pub page: usize,
    pub quit: bool,
}

impl App {
    pub fn new(me: UserId, username: &str, server: &str) -> App {
        App {
            me,
            username: username.to_owned(),
            server: server.to_owned(),
            rooms: Vec::new(),
            current: None,
            stickers: BTreeMap::new(),
            conn: Conn::Connected,
            status: None,
            notifications_unread: 0,
            editor: Editor::default(),
            panel: None,
            panel_scroll: 0,
            prompt: None,
            outgoing: Vec::new(),
            next_local: 1,
            page: 10,
            quit: false,
        }
    }

    pub fn room(&self, id: RoomId) -> Option<&RoomView> {
        self.rooms.iter().find(|r| r.info.id == id)
    }

    pub fn room_mut(&mut self, id: RoomId) -> Option<&mut RoomView> {
        self.rooms.iter_mut().find(|r| r.info.id == id)
    }

    pub fn current_room(&self) -> Option<&RoomView> {
        self.current.and_then(|id| self.room(id))
    }

    pub fn error(&mut self, text: impl Into<String>) {
        self.status = Some((text.into(), true));
    }

    pub fn info(&mut self, text: impl Into<String>) {
        self.status = Some((text.into(), false));
    }

    /// Shows `panel` from its top.
    pub fn show_panel(&mut self, panel: Panel) {
        self.panel = Some(panel);
        self.panel_scroll = 0;
    }

    /// Rooms with unread messages, for the badge.
    pub fn unread_total(&self) -> u32 {
        self.rooms.iter().map(|r| r.unread).sum()
    }

    fn sort_rooms(&mut self) {
        self.rooms.sort_by(|a, b| {
            (a.is_direct(), a.title().to_lowercase(), a.info.id).cmp(&(
                b.is_direct(),
                b.title().to_lowercase(),
                b.info.id,
            ))
        });
    }

    /// Adds (or refreshes) a room; the effects load it when new.
    fn upsert_room(&mut self, info: RoomInfo) {
        match self.room_mut(info.id) {
            Some(view) => view.info = info,
            None => self.rooms.push(RoomView::new(info)),
        }
        self.sort_rooms();
    }

    /// Makes `id` the room shown: loads it the first time and marks it read.
    pub fn select(&mut self, id: RoomId) -> Vec<Effect> {
        self.current = Some(id);
        self.panel = None;
        let Some(view) = self.room_mut(id) else {
            return vec![];
        };
        view.unread = 0;
        view.mentioned = false;
        view.scroll = 0;
        if !view.loaded {
            view.loaded = true;
            return vec![Effect::LoadRoom(id)];
        }
        view.last_seq()
            .map(|seq| vec![Effect::MarkRead(id, seq)])
            .unwrap_or_default()
    }

    /// The next (`step` 1) or previous (-1) room in the pane's order.
    pub fn cycle(&mut self, step: isize) -> Vec<Effect> {
        if self.rooms.is_empty() {
            return vec![];
        }
        let n = self.rooms.len() as isize;
        let at = self
            .current
            .and_then(|id| self.rooms.iter().position(|r| r.info.id == id))
            .map_or(0, |i| i as isize);
        let next = (at + step).rem_euclid(n) as usize;
        let id = self.rooms[next].info.id;
        self.select(id)
    }

    /// A server event.
    pub fn on_event(&mut self, event: Event) -> Vec<Effect> {
        match event {
            Event::Room(ev) => self.on_room_event(ev),
            Event::ResumeGap { room, .. } => self.reload(room),
            Event::Overflow(o) => {
                let mut effects: Vec<Effect> =
                    o.rooms.keys().flat_map(|r| self.reload(*r)).collect();
                effects.push(Effect::LoadRooms);
                effects
            }
            Event::Notification(n) => {
                if !n.read {
                    self.notifications_unread += 1;
                }
                match n.kind {
                    NotificationKind::Mentioned if self.current != Some(n.room) => {
                        if let Some(view) = self.room_mut(n.room) {
                            view.mentioned = true;
                        }
                    }
                    NotificationKind::Invited => self.info(format!(
                        "{} invited you to {} (#{}): /accept {} or /decline {}",
                        n.actor_name, n.room_name, n.room.0, n.room.0, n.room.0
                    )),
                    NotificationKind::JoinRequest => self.info(format!(
                        "{} asks to join {}: /requests",
                        n.actor_name, n.room_name
                    )),
                    NotificationKind::RequestApproved => self.info(format!(
                        "you may join {} now: /join {}",
                        n.room_name, n.room.0
                    )),
                    _ => {}
                }
                vec![]
            }
            Event::RoomAnnounced(info) => {
                // Created on another of the user's connections: it is theirs.
                if info.owner == self.me && self.room(info.id).is_none() {
                    self.upsert_room(info);
                }
                vec![]
            }
            Event::Typing {
                room,
                username,
                typing,
                ..
            } => {
                if let Some(view) = self.room_mut(room) {
                    if typing {
                        view.typing.insert(username, 0);
                    } else {
                        view.typing.remove(&username);
                    }
                }
                vec![]
            }
            Event::ReadMarkerMoved(state) => {
                if let Some(view) = self.room_mut(state.room) {
                    view.unread = state.unread;
                }
                vec![]
            }
            Event::Presence {
                room,
                user,
                presence,
                ..
            } => {
                if let Some(view) = self.room_mut(room) {
                    for m in view.members.iter_mut().filter(|m| m.user == user) {
                        m.presence = Some(presence);
                        m.online = presence != Presence::Offline;
                    }
                }
                vec![]
            }
            Event::Disconnected => {
                if !matches!(self.conn, Conn::Disconnected(_)) {
                    self.conn = Conn::Reconnecting;
                }
                vec![]
            }
            Event::Reconnected => {
                self.conn = Conn::Connected;
                self.info("reconnected");
                let mut effects = vec![Effect::LoadRooms];
                for out in self
                    .outgoing
                    .iter_mut()
                    .filter(|o| o.state == OutState::Queued)
                {
                    out.state = OutState::Sending;
                    effects.push(Effect::Send {
                        local: out.local,
                        room: out.room,
                        text: out.text.clone(),
                    });
                }
                effects
            }
            Event::Closed { code, message } => {
                let e = confab_sdk::Error::Closed { code, message };
                if crate::exit::is_session_gone(&e) {
                    self.session_ended(format!(
                        "{}: quit and run `confab login` again",
                        crate::exit::describe(&e)
                    ));
                } else {
                    self.error(crate::exit::describe(&e));
                }
                vec![]
            }
            _ => vec![],
        }
    }

    /// The event stream ended: no more reconnecting.
    pub fn on_stream_end(&mut self) {
        if !matches!(self.conn, Conn::Disconnected(_)) {
            self.conn = Conn::Disconnected("connection lost".to_owned());
        }
        self.fail_queued("not sent: disconnected");
    }

    fn session_ended(&mut self, why: String) {
        self.conn = Conn::Disconnected(why.clone());
        self.error(why);
        self.fail_queued("not sent: the session ended");
    }

    fn fail_queued(&mut self, why: &str) {
        for out in &mut self.outgoing {
            if matches!(out.state, OutState::Queued | OutState::Sending) {
                out.state = OutState::Failed(why.to_owned());
            }
        }
    }

    fn reload(&mut self, room: RoomId) -> Vec<Effect> {
        match self.room_mut(room) {
            Some(view) => {
                view.entries.clear();
                view.loaded = true;
                vec![Effect::LoadRoom(room)]
            }
            None => vec![],
        }
    }

    fn on_room_event(&mut self, ev: RoomEvent) -> Vec<Effect> {
        let me = self.me;
        let mention = format!("@{}", self.username);
        let current = self.current == Some(ev.room);
        let mut effects = Vec::new();
        // Events that change the room list come first.
        match &ev.body {
            EventBody::MemberKicked { target, .. } | EventBody::MemberBanned { target, .. }
                if *target == me =>
            {
                let what = show::describe(&ev);
                return self.drop_room(ev.room, what);
            }
            EventBody::RoomTerminated => {
                return self.drop_room(ev.room, "the room terminated".to_owned());
            }
            EventBody::MemberLeft if ev.actor == me => {
                return self.drop_room(ev.room, "you left the room".to_owned());
            }
            _ => {}
        }
        if let EventBody::Message { text, .. } = &ev.body {
            // The user's own message is in: its pending line goes (the
            // ack that follows finds nothing left to remove).
            if ev.actor == me {
                if let Some(i) = self.outgoing.iter().position(|o| {
                    o.room == ev.room && o.state == OutState::Sending && o.text == *text
                }) {
                    self.outgoing.remove(i);
                }
            }
        }
        let Some(view) = self.room_mut(ev.room) else {
            // A room joined elsewhere: list it.
            return vec![Effect::LoadRooms];
        };
        view.info.last_seq = view.info.last_seq.max(ev.seq);
        match &ev.body {
            EventBody::Message { text, .. } if ev.actor != me => {
                view.typing.remove(&ev.actor_name);
                if !current || view.scroll > 0 {
                    view.unread += 1;
                    if text.contains(&mention) && !current {
                        view.mentioned = true;
                    }
                } else {
                    effects.push(Effect::MarkRead(ev.room, ev.seq));
                }
            }
            EventBody::MemberJoined
            | EventBody::MemberLeft
            | EventBody::MemberKicked { .. }
            | EventBody::MemberBanned { .. }
            | EventBody::RoleChanged { .. }
                if view.loaded =>
            {
                effects.push(Effect::LoadMembers(ev.room));
            }
            EventBody::RoomUpdated { name, topic } => {
                view.info.name = name.clone();
                view.info.topic = topic.clone();
            }
            _ => {}
        }
        if view.loaded {
            view.absorb(ev);
        }
        self.sort_rooms();
        effects
    }

    fn drop_room(&mut self, room: RoomId, why: String) -> Vec<Effect> {
        let Some(at) = self.rooms.iter().position(|r| r.info.id == room) else {
            return vec![];
        };
        let title = self.rooms.remove(at).title();
        self.info(format!("{title}: {why}"));
        if self.current == Some(room) {
            self.current = None;
            if let Some(first) = self.rooms.first().map(|r| r.info.id) {
                return self.select(first);
            }
        }
        vec![]
    }

    /// The outcome of an effect.
    pub fn apply(&mut self, update: Update) -> Vec<Effect> {
        match update {
            Update::Rooms(rooms, unread) => {
                let ids: BTreeSet<RoomId> = rooms.iter().map(|r| r.id).collect();
                self.rooms.retain(|r| ids.contains(&r.info.id));
                for info in rooms {
                    self.upsert_room(info);
                }
                for state in unread.rooms {
                    if self.current != Some(state.room) {
                        if let Some(view) = self.room_mut(state.room) {
                            view.unread = state.unread;
                        }
                    }
                }
                let mut effects: Vec<Effect> = self
                    .rooms
                    .iter()
                    .filter(|r| r.loaded)
                    .map(|r| Effect::LoadRoom(r.info.id))
                    .collect();
                if self.current.is_none_or(|id| self.room(id).is_none()) {
                    self.current = None;
                    if let Some(first) = self.rooms.first().map(|r| r.info.id) {
                        effects.extend(self.select(first));
                    }
                }
                effects
            }
            Update::Stickers(list) => {
                self.stickers = list.into_iter().map(|s| (s.id.clone(), s)).collect();
                vec![]
            }
            Update::History(page) => {
                let current = self.current == Some(page.room);
                if let Some(view) = self.room_mut(page.room) {
                    let oldest_before = view.entries.keys().next().copied();
                    let older = page
                        .events
                        .last()
                        .is_some_and(|e| oldest_before.is_some_and(|o| e.seq < o));
                    if older || oldest_before.is_none() {
                        view.has_more = page.has_more;
                    }
                    // Oldest first, so that edits and deletions find their
                    // message.
                    for ev in page.events.into_iter().rev() {
                        view.absorb(ev);
                    }
                    if current {
                        if let Some(seq) = view.last_seq() {
                            return vec![Effect::MarkRead(view.info.id, seq)];
                        }
                    }
                }
                vec![]
            }
            Update::Members(room, members) => {
                if let Some(view) = self.room_mut(room) {
                    view.members = members;
                }
                vec![]
            }
            Update::Entered(info) => {
                let id = info.id;
                self.info(format!(
                    "you are in {}",
                    RoomView::new(info.clone()).title()
                ));
                self.upsert_room(info);
                self.select(id)
            }
            Update::Left(id) => self.drop_room(id, "you left".to_owned()),
            Update::Sent(local, _ack) => {
                self.outgoing.retain(|o| o.local != local);
                vec![]
            }
            Update::SendFailed(local, why) => {
                if let Some(o) = self.outgoing.iter_mut().find(|o| o.local == local) {
                    o.state = OutState::Failed(why.clone());
                }
                self.error(format!("message not sent: {why}"));
                vec![]
            }
            Update::Panel(panel) => {
                self.show_panel(panel);
                vec![]
            }
            Update::Done(text) => {
                self.info(text);
                vec![]
            }
            Update::Failed(text) => {
                self.error(text);
                vec![]
            }
            Update::NotificationsUnread(n) => {
                self.notifications_unread = n;
                vec![]
            }
            Update::SessionEnded(why) => {
                self.session_ended(why);
                vec![]
            }
            Update::LoggedOut => {
                self.quit = true;
                vec![Effect::Quit]
            }
        }
    }
}
