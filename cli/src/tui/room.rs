//! A room as the UI holds it: its loaded events by seq, with edits and
//! deletions applied as they arrive ([`RoomView::absorb`]), its members,
//! and what the rooms pane shows of it.

use std::collections::BTreeMap;

use confab_sdk::{Attachment, EventBody, Member, Millis, RoomEvent, RoomInfo, Seq, Span, UserId};

use crate::show;

/// What a line of the message pane holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Message {
        text: String,
        spans: Vec<Span>,
        edited: bool,
        sticker: Option<String>,
        /// The files it carries: shown as names with sizes.
        files: Vec<Attachment>,
    },
    Tombstone,
    /// A membership or room change, described.
    Notice(String),
}

/// One room event as the message pane shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: Seq,
    pub at: Millis,
    pub sender: UserId,
    pub sender_name: String,
    pub body: Body,
}

/// A room the user is in, with what has been loaded of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomView {
    pub info: RoomInfo,
    /// Loaded events by seq (edits and deletions applied).
    pub entries: BTreeMap<Seq, Entry>,
    pub members: Vec<Member>,
    pub unread: u32,
    pub mentioned: bool,
    /// Older events exist than the oldest loaded.
    pub has_more: bool,
    /// Whether its first page was asked for.
    pub loaded: bool,
    /// Lines scrolled up from the newest.
    pub scroll: usize,
    /// Who is typing now, with the ticks since their last START: one
    /// whose START is two ticks (~6 s) old counts as stopped (SPEC.md
    /// §5.5.7: a STOP may be lost).
    pub typing: BTreeMap<String, u8>,
}

impl RoomView {
    pub fn new(info: RoomInfo) -> RoomView {
        RoomView {
            info,
            entries: BTreeMap::new(),
            members: Vec::new(),
            unread: 0,
            mentioned: false,
            has_more: false,
            loaded: false,
            scroll: 0,
            typing: BTreeMap::new(),
        }
    }

    /// The name shown: the other user's for a direct chat.
    pub fn title(&self) -> String {
        match &self.info.direct_with {
            Some(d) => format!("@{}", d.username),
            None => format!("#{}", self.info.name),
        }
    }

    pub fn is_direct(&self) -> bool {
        self.info.direct_with.is_some()
    }

    pub(crate) fn last_seq(&self) -> Option<Seq> {
        self.entries.keys().next_back().copied()
    }
}

impl RoomView {
    /// Applies one event to the loaded entries: a message or notice is
    /// added, an edit changes its message, a deletion leaves a tombstone.
    pub fn absorb(&mut self, ev: RoomEvent) {
        let entry = |body| Entry {
            seq: ev.seq,
            at: ev.at,
            sender: ev.actor,
            sender_name: ev.actor_name.clone(),
            body,
        };
        match &ev.body {
            EventBody::Message {
                text,
                edited_at,
                spans,
                sticker,
                attachments,
            } => {
                self.entries.insert(
                    ev.seq,
                    entry(Body::Message {
                        text: text.clone(),
                        spans: spans.clone(),
                        edited: edited_at.is_some(),
                        sticker: sticker.clone(),
                        files: attachments.clone(),
                    }),
                );
            }
            EventBody::Tombstone => {
                self.entries.insert(ev.seq, entry(Body::Tombstone));
            }
            EventBody::MessageEdited {
                target,
                text,
                spans,
            } => {
                // In history the edit carries no text: the message has it.
                if !text.is_empty() {
                    if let Some(Entry {
                        body:
                            Body::Message {
                                text: t,
                                spans: s,
                                edited,
                                ..
                            },
                        ..
                    }) = self.entries.get_mut(target)
                    {
                        *t = text.clone();
                        *s = spans.clone();
                        *edited = true;
                    }
                }
            }
            EventBody::MessageDeleted { target } => {
                if let Some(e) = self.entries.get_mut(target) {
                    e.body = Body::Tombstone;
                }
            }
            _ => {
                self.entries
                    .insert(ev.seq, entry(Body::Notice(show::describe(&ev))));
            }
        }
    }
}
