//! Keys in, state changed and [`Effect`]s out: the input state machine.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::app::{App, Body, Conn, OutState, Outgoing, Prompt};
use super::command::{self, Slash, Which};
use super::effect::Effect;
use super::input::Edit;
use super::slash::help;

impl App {
    /// One key press.
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if key.kind == KeyEventKind::Release {
            return vec![];
        }
        let room = self.current;
        let before = self.typing_into();
        let mut effects = self.handle_key(key);
        // Others see you typing while the input holds a message (the
        // server forgets it 5 s after the last START).
        let after = self.typing_into();
        if let (Some(room), true) = (room, before != after) {
            if self.conn == Conn::Connected && self.current == Some(room) {
                effects.insert(0, Effect::Typing(room, after));
            }
        }
        effects
    }

    /// Every few seconds (the loop's tick): renews the typing notice
    /// while a message is being typed (SPEC.md §5.5.7: every 2 to 4 s).
    /// Also forgets typists whose START is two ticks old.
    pub fn on_tick(&mut self) -> Vec<Effect> {
        for room in &mut self.rooms {
            room.typing.retain(|_, ticks| {
                *ticks += 1;
                *ticks < 2
            });
        }
        match self.current {
            Some(room) if self.typing_into() && self.conn == Conn::Connected => {
                vec![Effect::Typing(room, true)]
            }
            _ => vec![],
        }
    }

    /// Whether the input holds a message being typed (not a command, not
    /// a password).
    fn typing_into(&self) -> bool {
        let text = self.editor.shown();
        self.prompt.is_none() && !text.trim().is_empty() && !text.starts_with('/')
    }

    fn handle_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        match key.code {
            KeyCode::Char('c') | KeyCode::Char('q') if ctrl => {
                self.quit = true;
                vec![Effect::Quit]
            }
            KeyCode::Esc => {
                if self.prompt.take().is_some() {
                    self.editor.masked = false;
                    self.editor.set("");
                    self.info("cancelled");
                } else if self.panel.take().is_none() {
                    self.status = None;
                }
                vec![]
            }
            KeyCode::Enter if alt || key.modifiers.contains(KeyModifiers::SHIFT) => {
                self.editor.newline();
                vec![]
            }
            KeyCode::Char('j') if ctrl => {
                self.editor.newline();
                vec![]
            }
            KeyCode::Enter => match self.editor.submit() {
                Edit::Submit(text) => self.submit(text),
                _ => vec![],
            },
            KeyCode::Up if alt || ctrl => self.cycle(-1),
            KeyCode::Down if alt || ctrl => self.cycle(1),
            KeyCode::Char('p') if ctrl => self.cycle(-1),
            KeyCode::Char('n') if ctrl => self.cycle(1),
            KeyCode::Up => {
                self.editor.older();
                vec![]
            }
            KeyCode::Down => {
                self.editor.newer();
                vec![]
            }
            KeyCode::PageUp if self.panel.is_some() => {
                self.panel_scroll = self.panel_scroll.saturating_sub(self.page);
                vec![]
            }
            KeyCode::PageDown if self.panel.is_some() => {
                let lines = self.panel.as_ref().map_or(0, |p| p.lines.len());
                self.panel_scroll = (self.panel_scroll + self.page).min(lines.saturating_sub(1));
                vec![]
            }
            KeyCode::PageUp => self.scroll_up(),
            KeyCode::PageDown => self.scroll_down(),
            KeyCode::Tab => {
                let names = self.completion_names();
                self.editor.complete(&command::complete, &names);
                vec![]
            }
            KeyCode::Backspace => {
                self.editor.backspace();
                vec![]
            }
            KeyCode::Delete => {
                self.editor.delete();
                vec![]
            }
            KeyCode::Left => {
                self.editor.left();
                vec![]
            }
            KeyCode::Right => {
                self.editor.right();
                vec![]
            }
            KeyCode::Home => {
                self.editor.home();
                vec![]
            }
            KeyCode::End => {
                self.editor.end();
                vec![]
            }
            KeyCode::Char('u') if ctrl => {
                self.editor.clear();
                vec![]
            }
            KeyCode::Char('w') if ctrl => {
                self.editor.delete_word();
                vec![]
            }
            KeyCode::Char(c) if !ctrl => {
                self.editor.insert(c);
                vec![]
            }
            _ => vec![],
        }
    }

    /// Usernames for Tab: the current room's members, then everyone in
    /// the direct chats.
    fn completion_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .current_room()
            .map(|r| r.members.iter().map(|m| m.username.clone()).collect())
            .unwrap_or_default();
        names.extend(
            self.rooms
                .iter()
                .filter_map(|r| r.info.direct_with.as_ref().map(|d| d.username.clone())),
        );
        names
    }

    /// PageDown: scrolls forward; back at the newest, what arrived
    /// meanwhile counts as read.
    fn scroll_down(&mut self) -> Vec<Effect> {
        let page = self.page;
        let Some(view) = self.current.and_then(|id| self.room_mut(id)) else {
            return vec![];
        };
        view.scroll = view.scroll.saturating_sub(page);
        if view.scroll > 0 || view.unread == 0 {
            return vec![];
        }
        view.unread = 0;
        match view.entries.keys().next_back() {
            Some(seq) => vec![Effect::MarkRead(view.info.id, *seq)],
            None => vec![],
        }
    }

    /// PageUp: scrolls back, asking for older history when near the top
    /// of what is loaded.
    fn scroll_up(&mut self) -> Vec<Effect> {
        let page = self.page;
        let Some(view) = self.current.and_then(|id| self.room_mut(id)) else {
            return vec![];
        };
        view.scroll += page;
        // Every entry takes at least one line: once the scroll nears their
        // count, the top of what is loaded is near.
        if view.has_more && view.scroll + 2 * page >= view.entries.len() {
            if let Some(oldest) = view.entries.keys().next().copied() {
                view.has_more = false;
                return vec![Effect::LoadOlder(view.info.id, oldest)];
            }
        }
        vec![]
    }

    /// Enter with `text`: an answer to a prompt, a command, or a message.
    fn submit(&mut self, text: String) -> Vec<Effect> {
        match self.prompt.take() {
            Some(Prompt::CurrentPassword) => {
                self.prompt = Some(Prompt::NewPassword(text));
                self.info("new password (Esc cancels):");
                return vec![];
            }
            Some(Prompt::NewPassword(current)) => {
                self.editor.masked = false;
                self.info("changing the password…");
                return vec![Effect::ChangePassword { current, new: text }];
            }
            None => {}
        }
        if let Some(line) = text.strip_prefix('/') {
            if !line.starts_with('/') {
                return self.slash(line);
            }
        }
        let text = text.strip_prefix('/').map_or(text.clone(), str::to_owned);
        self.send(text)
    }

    fn send(&mut self, text: String) -> Vec<Effect> {
        let Some(room) = self.current else {
            self.error("no room selected: /join ROOM, /create NAME or /dm USER first");
            return vec![];
        };
        if let Conn::Disconnected(why) = &self.conn {
            let why = why.clone();
            self.error(format!("not connected ({why}): message not sent"));
            return vec![];
        }
        let local = self.next_local;
        self.next_local += 1;
        let connected = self.conn == Conn::Connected;
        self.outgoing.push(Outgoing {
            local,
            room,
            text: text.clone(),
            state: if connected {
                OutState::Sending
            } else {
                OutState::Queued
            },
        });
        if let Some(view) = self.room_mut(room) {
            view.scroll = 0;
        }
        if connected {
            vec![Effect::Send { local, room, text }]
        } else {
            self.info("offline: the message will be sent after reconnecting");
            vec![]
        }
    }

    fn slash(&mut self, line: &str) -> Vec<Effect> {
        let cmd = match command::parse(line) {
            Ok(cmd) => cmd,
            Err(problem) => {
                self.error(problem);
                return vec![];
            }
        };
        match cmd {
            Slash::Quit => {
                self.quit = true;
                vec![Effect::Quit]
            }
            Slash::Help => {
                self.show_panel(help());
                vec![]
            }
            Slash::Password => {
                self.prompt = Some(Prompt::CurrentPassword);
                self.editor.masked = true;
                self.info("current password (Esc cancels):");
                vec![]
            }
            Slash::Edit(Which::Last, text) => {
                let which = self.my_last_message();
                vec![Effect::Slash(self.current, Slash::Edit(which, text))]
            }
            Slash::Delete(Which::Last) => {
                let which = self.my_last_message();
                vec![Effect::Slash(self.current, Slash::Delete(which))]
            }
            Slash::Download(id, None) => {
                let path = self.file_name(id).unwrap_or_else(|| format!("file-{id}"));
                vec![Effect::Slash(self.current, Slash::Download(id, Some(path)))]
            }
            other if other.needs_room() && self.current.is_none() => {
                self.error("no room selected: /join ROOM, /create NAME or /dm USER first");
                vec![]
            }
            other => vec![Effect::Slash(self.current, other)],
        }
    }

    /// The name file `id` was uploaded under, if a loaded message carries
    /// it — its last path component only, so that a name can never point
    /// elsewhere.
    fn file_name(&self, id: u64) -> Option<String> {
        self.rooms
            .iter()
            .flat_map(|view| view.entries.values())
            .find_map(|e| match &e.body {
                Body::Message { files, .. } => files.iter().find(|f| f.id == id),
                _ => None,
            })
            .and_then(|f| std::path::Path::new(&f.name).file_name())
            .map(|n| n.to_string_lossy().into_owned())
    }

    /// The user's newest message in the current room, if loaded.
    fn my_last_message(&self) -> Which {
        self.current_room()
            .and_then(|view| {
                view.entries
                    .values()
                    .rev()
                    .find(|e| e.sender == self.me && matches!(e.body, Body::Message { .. }))
            })
            .map_or(Which::Last, |e| Which::Seq(e.seq))
    }
}
