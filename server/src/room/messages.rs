//! What a room knows about its messages, to rule on EDIT_MESSAGE and
//! DELETE_MESSAGE (SPEC.md §5.4.5) without holding every message it ever
//! had.
//!
//! The store is the truth for messages that are durable; the room knows
//! only what the store may not know yet:
//!
//! - **fresh** messages: posted here and not yet known to be in the
//!   database. Forgotten once the room's durable watermark passes them.
//! - **changed** messages: edited or deleted here, until that change is
//!   durable. Forgotten the same way.
//!
//! For any other message the shard cannot answer from memory, and a shard
//! never awaits the store: the session reads the message from the store
//! (after the room asked for it, so the read is at least as new as
//! everything the room had forgotten then) and sends the command again
//! with what it read. A change made *after* the room asked, and forgotten
//! before the command came back, could be missing from that read: the room
//! numbers its changes (`generation`), remembers the newest one it forgot,
//! and asks for a fresh read when the read predates it. So memory stays
//! bounded by what is not yet durable, and a stale read is never trusted.
//!
//! Pure data, no I/O.

use std::collections::{BTreeMap, HashMap};

use confab_protocol::{Attachment, Millis, Seq, UserId};

/// What the room must know about a message to rule on a change to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageFacts {
    pub sender: UserId,
    pub sender_name: String,
    /// When it was sent.
    pub at: Millis,
    pub deleted: bool,
    /// A sticker message, which cannot be edited.
    pub sticker: bool,
    /// The files it carries: an edit keeps them, a delete deletes them.
    pub attachments: Vec<Attachment>,
}

/// What the session read from the store about the event at a seq, and
/// when (in the room's change generations) it was asked to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Not read yet: the room answers from memory or asks for a read.
    NotRead,
    /// Read after the room asked at `generation`; `found` is `None` when
    /// the store holds no message at that seq (no event, or another kind).
    Read {
        generation: u64,
        found: Option<MessageFacts>,
    },
}

/// How a room can rule on a change to the message at a seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    Known(MessageFacts),
    /// No message at that seq.
    Missing,
    /// Only the store knows: read it and come back with
    /// [`Lookup::Read`] at this generation.
    NeedStore {
        generation: u64,
    },
}

#[derive(Debug, Clone)]
struct Changed {
    facts: MessageFacts,
    /// The seq of the event that made the change (durable once the room's
    /// watermark reaches it).
    by_event: Seq,
    generation: u64,
}

/// A room's memory of its not-yet-durable messages and changes.
#[derive(Debug, Clone, Default)]
pub struct MessageIndex {
    fresh: BTreeMap<Seq, MessageFacts>,
    changed: HashMap<Seq, Changed>,
    /// Changed messages by the event that changed them, to forget them in
    /// order: (change event seq → message seq).
    changes_in_order: BTreeMap<Seq, Seq>,
    /// Changes made so far.
    generation: u64,
    /// The newest change generation forgotten.
    forgotten: u64,
}

impl MessageIndex {
    /// A message the room just posted at `seq`.
    pub fn posted(&mut self, seq: Seq, facts: MessageFacts) {
        self.fresh.insert(seq, facts);
    }

    /// What is known about the message at `seq` of a room whose latest
    /// event is `last`, given what the session read.
    pub fn resolve(&self, seq: Seq, last: Seq, lookup: &Lookup) -> Resolved {
        if seq.0 == 0 || seq > last {
            return Resolved::Missing;
        }
        if let Some(c) = self.changed.get(&seq) {
            return Resolved::Known(c.facts.clone());
        }
        if let Some(f) = self.fresh.get(&seq) {
            return Resolved::Known(f.clone());
        }
        match lookup {
            Lookup::Read { generation, found } if *generation >= self.forgotten => match found {
                Some(f) => Resolved::Known(f.clone()),
                None => Resolved::Missing,
            },
            _ => Resolved::NeedStore {
                generation: self.generation,
            },
        }
    }

    /// The message at `seq` now reads as `facts`, changed by the event
    /// `by_event`.
    pub fn changed(&mut self, seq: Seq, facts: MessageFacts, by_event: Seq) {
        self.fresh.remove(&seq);
        self.generation += 1;
        if let Some(old) = self.changed.insert(
            seq,
            Changed {
                facts,
                by_event,
                generation: self.generation,
            },
        ) {
            self.changes_in_order.remove(&old.by_event);
        }
        self.changes_in_order.insert(by_event, seq);
    }

    /// Forgets what the database now holds: everything up to `stored`.
    pub fn forget_durable(&mut self, stored: Seq) {
        if self
            .fresh
            .first_key_value()
            .is_some_and(|(s, _)| *s <= stored)
        {
            self.fresh = self.fresh.split_off(&Seq(stored.0.saturating_add(1)));
        }
        while let Some(entry) = self.changes_in_order.first_entry() {
            if *entry.key() > stored {
                break;
            }
            let seq = entry.remove();
            if let Some(c) = self.changed.remove(&seq) {
                self.forgotten = self.forgotten.max(c.generation);
            }
        }
    }

    /// Messages held in memory (fresh and changed).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.fresh.len() + self.changed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(sender: u64) -> MessageFacts {
        MessageFacts {
            sender: UserId(sender),
            sender_name: format!("u{sender}"),
            at: 10,
            deleted: false,
            sticker: false,
            attachments: Vec::new(),
        }
    }

    #[test]
    fn seqs_outside_the_room_are_missing_without_a_read() {
        let idx = MessageIndex::default();
        assert_eq!(
            idx.resolve(Seq(0), Seq(5), &Lookup::NotRead),
            Resolved::Missing
        );
        assert_eq!(
            idx.resolve(Seq(6), Seq(5), &Lookup::NotRead),
            Resolved::Missing
        );
    }

    #[test]
    fn fresh_messages_are_known_until_durable_then_the_store_is_asked() {
        let mut idx = MessageIndex::default();
        idx.posted(Seq(3), facts(1));
        assert_eq!(
            idx.resolve(Seq(3), Seq(3), &Lookup::NotRead),
            Resolved::Known(facts(1))
        );
        idx.forget_durable(Seq(2));
        assert_eq!(idx.len(), 1, "not durable yet");
        idx.forget_durable(Seq(3));
        assert_eq!(idx.len(), 0);
        assert_eq!(
            idx.resolve(Seq(3), Seq(3), &Lookup::NotRead),
            Resolved::NeedStore { generation: 0 }
        );
        let read = Lookup::Read {
            generation: 0,
            found: Some(facts(1)),
        };
        assert_eq!(
            idx.resolve(Seq(3), Seq(3), &read),
            Resolved::Known(facts(1))
        );
        let none = Lookup::Read {
            generation: 0,
            found: None,
        };
        assert_eq!(idx.resolve(Seq(3), Seq(3), &none), Resolved::Missing);
    }

    #[test]
    fn a_change_wins_over_a_read_until_durable() {
        let mut idx = MessageIndex::default();
        let deleted = MessageFacts {
            deleted: true,
            ..facts(1)
        };
        idx.changed(Seq(2), deleted.clone(), Seq(9));
        let stale = Lookup::Read {
            generation: 0,
            found: Some(facts(1)),
        };
        assert_eq!(
            idx.resolve(Seq(2), Seq(9), &stale),
            Resolved::Known(deleted)
        );
    }

    #[test]
    fn a_read_older_than_a_forgotten_change_is_not_trusted() {
        let mut idx = MessageIndex::default();
        // The room asks for a read at generation 0 ...
        let asked = match idx.resolve(Seq(2), Seq(8), &Lookup::NotRead) {
            Resolved::NeedStore { generation } => generation,
            other => panic!("{other:?}"),
        };
        // ... meanwhile message 2 is deleted, and that becomes durable and
        // is forgotten before the read comes back.
        let deleted = MessageFacts {
            deleted: true,
            ..facts(1)
        };
        idx.changed(Seq(2), deleted, Seq(9));
        idx.forget_durable(Seq(9));
        let stale = Lookup::Read {
            generation: asked,
            found: Some(facts(1)),
        };
        let again = idx.resolve(Seq(2), Seq(9), &stale);
        assert_eq!(again, Resolved::NeedStore { generation: 1 });
        // A read made after that is trusted.
        let fresh_read = Lookup::Read {
            generation: 1,
            found: None,
        };
        assert_eq!(idx.resolve(Seq(2), Seq(9), &fresh_read), Resolved::Missing);
    }

    #[test]
    fn changing_a_message_twice_keeps_one_entry_forgotten_after_the_second() {
        let mut idx = MessageIndex::default();
        idx.posted(Seq(1), facts(1));
        idx.changed(Seq(1), facts(1), Seq(2));
        idx.changed(Seq(1), facts(1), Seq(3));
        assert_eq!(idx.len(), 1);
        idx.forget_durable(Seq(2));
        assert_eq!(idx.len(), 1, "the second change is not durable yet");
        idx.forget_durable(Seq(3));
        assert_eq!(idx.len(), 0);
    }
}
