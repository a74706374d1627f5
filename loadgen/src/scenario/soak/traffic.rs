//! The soak's mixed traffic, one loop per kind, all until [`Soak::stop`]:
//!
//! - `chat`: each chatter sends to a random room of its own, one message at
//!   a time, so that the whole population offers about `rate` per second;
//! - `churn`: a chatter leaves a public room it does not own and rejoins a
//!   moment later;
//! - `resume`: a chatter's client is closed and replaced by a new one that
//!   resumes every room from the last seq the chatter received;
//! - `visits`: a visitor logs in with its password (a fresh session), says
//!   something, reads a page of history and logs out;
//! - `history`: a chatter reads the newest page of one of its rooms, which
//!   must be consecutive seqs;
//! - `governance`: in each private room the owner invites the guest, who
//!   accepts and talks, then kicks, re-invites, bans and unbans them.
//!
//! A request a restart interrupts is counted and not retried (a message
//! might have been stored); the loops move on and absorb the consequences
//! (a "not banned" after an unban whose OK was lost, say).

use std::rc::Rc;
use std::time::Duration;

use confab_sdk::{Client, Error, ErrorCode, RoomEvent, RoomId, UserRef};

use super::ledger::MsgId;
use super::population::{self, short_options, Soak, SoakUser};
use crate::setup::PASSWORD;

/// How a request ended, other than well.
pub enum Outcome {
    /// No answer: the connection dropped, the server was shutting down or
    /// the request timed out. Its effect is unknown.
    Interrupted,
    /// The server refused it.
    Refused(ErrorCode),
    /// Anything else (an unknown code, a protocol error).
    Other,
}

pub fn outcome(e: &Error) -> Outcome {
    match e {
        Error::Disconnected | Error::Timeout | Error::Closed { .. } | Error::Io(_) => {
            Outcome::Interrupted
        }
        Error::Server { .. } => match e.code() {
            Some(
                ErrorCode::ShuttingDown | ErrorCode::StorageUnavailable | ErrorCode::Overloaded,
            ) => Outcome::Interrupted,
            Some(code) => Outcome::Refused(code),
            None => Outcome::Other,
        },
        _ => Outcome::Other,
    }
}

/// Sleeps `mean` give or take half, unless the soak stops first; `false`
/// once it has stopped.
async fn pause(soak: &Soak, mean: Duration) -> bool {
    let d = mean.mul_f64(0.5 + rand::random::<f64>());
    let deadline = tokio::time::Instant::now() + d;
    while !soak.stop.get() {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return true;
        }
        tokio::time::sleep((deadline - now).min(Duration::from_millis(250))).await;
    }
    false
}

/// Records a request that failed: interrupted, refused as `expected`
/// allows, or unexpected (a failure of the soak).
fn failed(soak: &Soak, what: &str, e: &Error, expected: impl Fn(ErrorCode) -> bool) -> Outcome {
    let o = outcome(e);
    let mut ledger = soak.ledger.borrow_mut();
    match &o {
        Outcome::Interrupted => ledger.counters.interrupted += 1,
        Outcome::Refused(code) if expected(*code) => {}
        _ => ledger.unexpected.push(|| format!("{what}: {e}")),
    }
    o
}

/// Sends one message of `user` to `room` on `client` and records it.
/// `refusable` says which refusals are expected (and counted as such).
pub async fn send(
    soak: &Soak,
    user: &SoakUser,
    client: &Client,
    room: RoomId,
    refusable: impl Fn(ErrorCode) -> bool,
) -> Result<(), Outcome> {
    let id = MsgId {
        user: user.index,
        n: user.next_message(),
    };
    soak.ledger.borrow_mut().counters.sent += 1;
    match client.send_message(room, &soak.tag.text(id)).await {
        Ok(ack) => {
            let mut ledger = soak.ledger.borrow_mut();
            ledger.ack(id, ack.room, ack.seq);
            if user.listens {
                ledger.own_acked(id);
            }
            Ok(())
        }
        Err(e) => {
            let what = format!("{} sending to room {room}", user.name);
            let o = failed(soak, &what, &e, &refusable);
            let mut ledger = soak.ledger.borrow_mut();
            match o {
                Outcome::Interrupted => ledger.counters.unknown += 1,
                Outcome::Refused(c) if refusable(c) => ledger.counters.refused_expected += 1,
                _ => {}
            }
            Err(o)
        }
    }
}

/// One chatter's messages, `period` apart on average.
pub async fn chat(soak: Rc<Soak>, user: Rc<SoakUser>, period: Duration) {
    while pause(&soak, period).await {
        let (Some(client), Some(room)) = (user.client(), user.any_room()) else {
            continue;
        };
        // A leave may land between picking the room and the reply.
        let u = user.clone();
        let left =
            move |c: ErrorCode| c == ErrorCode::NotAMember && !u.rooms.borrow().contains(&room);
        let _ = send(&soak, &user, &client, room, left).await;
    }
}

/// Leaves and rejoins public rooms, one every `period` on average.
pub async fn churn(soak: Rc<Soak>, period: Duration) {
    let mut rejoins = Vec::new();
    while pause(&soak, period).await {
        let u = soak.chatters[rand::random::<usize>() % soak.chatters.len()].clone();
        let candidates: Vec<RoomId> = u
            .rooms
            .borrow()
            .iter()
            .filter(|r| soak.public.contains(r) && !u.owns.borrow().contains(r))
            .copied()
            .collect();
        let (Some(client), Some(&room)) = (
            u.client(),
            candidates.get(rand::random::<usize>() % candidates.len().max(1)),
        ) else {
            continue;
        };
        u.rooms.borrow_mut().remove(&room);
        match client.leave_room(room).await {
            Ok(()) => soak.ledger.borrow_mut().counters.leaves += 1,
            Err(e) => {
                let _ = failed(
                    &soak,
                    &format!("{} leaving room {room}", u.name),
                    &e,
                    |_| false,
                );
            }
        }
        let soak = soak.clone();
        rejoins.retain(|t: &tokio::task::JoinHandle<()>| !t.is_finished());
        rejoins.push(tokio::task::spawn_local(async move {
            // Rejoins even after the soak has stopped: memberships end as
            // they began.
            let _ = pause(&soak, Duration::from_millis(800)).await;
            rejoin(&soak, &u, room).await;
        }));
    }
    for t in rejoins {
        let _ = t.await;
    }
}

/// Joins `room` until it is a member (or the traffic has long stopped).
async fn rejoin(soak: &Soak, u: &SoakUser, room: RoomId) {
    for _ in 0..100 {
        if let Some(client) = u.client() {
            match client.join_room(room).await {
                Ok(_) => {
                    soak.ledger.borrow_mut().counters.joins += 1;
                    u.rooms.borrow_mut().insert(room);
                    return;
                }
                Err(e) => {
                    let what = format!("{} joining room {room}", u.name);
                    // Its earlier JOIN committed but the answer was lost.
                    if let Outcome::Refused(ErrorCode::AlreadyMember) =
                        failed(soak, &what, &e, |c| c == ErrorCode::AlreadyMember)
                    {
                        u.rooms.borrow_mut().insert(room);
                        return;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Replaces a random chatter's client every `period` on average.
pub async fn resume(soak: Rc<Soak>, period: Duration) {
    while pause(&soak, period).await {
        let u = soak.chatters[rand::random::<usize>() % soak.chatters.len()].clone();
        population::disconnect(&u).await;
        match population::reconnect(&soak, &u).await {
            Ok(()) => soak.ledger.borrow_mut().counters.resumes += 1,
            Err(e) => soak
                .ledger
                .borrow_mut()
                .unexpected
                .push(|| format!("{e:#}")),
        }
    }
}

/// A visitor's short session every `period` on average.
pub async fn visits(soak: Rc<Soak>, period: Duration) {
    let mut k = 0usize;
    while pause(&soak, period).await && !soak.visitors.is_empty() {
        let v = soak.visitors[k % soak.visitors.len()].clone();
        k += 1;
        let Ok(client) = Client::connect(&soak.url, short_options()).await else {
            soak.ledger.borrow_mut().counters.interrupted += 1;
            continue;
        };
        visit(&soak, &v, &client).await;
        client.close().await;
    }
}

async fn visit(soak: &Soak, v: &SoakUser, client: &Client) {
    if let Err(e) = client.login(&v.name, PASSWORD).await {
        failed(soak, &format!("{} logging in", v.name), &e, |_| false);
        return;
    }
    soak.ledger.borrow_mut().counters.logins += 1;
    let Some(room) = v.any_room() else { return };
    if send(soak, v, client, room, |_| false).await.is_err() {
        return;
    }
    read_page(soak, v, client, room, 20, |_| false).await;
    if let Err(e) = client.logout().await {
        failed(soak, &format!("{} logging out", v.name), &e, |_| false);
    }
}

/// A history read every `period` on average.
pub async fn history(soak: Rc<Soak>, period: Duration) {
    while pause(&soak, period).await {
        let u = soak.chatters[rand::random::<usize>() % soak.chatters.len()].clone();
        let (Some(client), Some(room)) = (u.client(), u.any_room()) else {
            continue;
        };
        let left = |c: ErrorCode| c == ErrorCode::NotAMember && !u.rooms.borrow().contains(&room);
        read_page(&soak, &u, &client, room, 50, left).await;
    }
}

/// Reads the newest `limit` events of `room`, which must be consecutive.
async fn read_page(
    soak: &Soak,
    u: &SoakUser,
    client: &Client,
    room: RoomId,
    limit: u32,
    refusable: impl Fn(ErrorCode) -> bool,
) {
    match client.history(room, None, limit).await {
        Ok(page) => {
            let mut ledger = soak.ledger.borrow_mut();
            ledger.counters.history_reads += 1;
            if let Some(fault) = page_fault(&page.events) {
                ledger
                    .history_faults
                    .push(|| format!("{} reading room {room}: {fault}", u.name));
            }
        }
        Err(e) => {
            failed(
                soak,
                &format!("{} reading room {room}", u.name),
                &e,
                refusable,
            );
        }
    }
}

/// What is wrong with a page of history (newest first), if anything.
pub fn page_fault(events: &[RoomEvent]) -> Option<String> {
    events.windows(2).find_map(|w| {
        (w[1].seq.0 + 1 != w[0].seq.0).then(|| format!("seq {} follows seq {}", w[0].seq, w[1].seq))
    })
}

/// The governance cycle of one private room, a step every `period` on
/// average.
pub async fn governance(soak: Rc<Soak>, room: usize, period: Duration) {
    let (id, owner, guest) = {
        let p = &soak.private[room];
        (p.id, p.owner.clone(), p.guest.clone())
    };
    let target = guest.id;
    // Codes that mean "a reply lost in a restart put us out of step".
    use ErrorCode::*;
    let step = |what: &'static str| format!("{what} in room {id}");
    // Whether the guest is certainly banned: the ban's OK arrived.
    let mut banned = false;
    loop {
        for action in [
            Action::Invite,
            Action::Accept,
            Action::Talk,
            Action::Kick,
            Action::Invite,
            Action::Accept,
            Action::Talk,
            Action::Ban,
            Action::TalkBanned,
            Action::Unban,
        ] {
            if !pause(&soak, period).await {
                return;
            }
            let (Some(oc), Some(gc)) = (owner.client(), guest.client()) else {
                continue;
            };
            let result = match action {
                Action::Invite => oc
                    .invite(id, UserRef::Id(target))
                    .await
                    .map_err(|e| (e, [AlreadyInvited, AlreadyMember, TargetBanned].as_slice())),
                Action::Accept => match gc.accept_invite(id).await {
                    Ok(_) => {
                        guest.rooms.borrow_mut().insert(id);
                        Ok(())
                    }
                    Err(e) => Err((e, [NotInvited, AlreadyMember, Banned].as_slice())),
                },
                Action::Kick => {
                    guest.rooms.borrow_mut().remove(&id);
                    oc.kick(id, target)
                        .await
                        .map_err(|e| (e, [TargetNotMember].as_slice()))
                }
                Action::Ban => {
                    guest.rooms.borrow_mut().remove(&id);
                    let r = oc.ban(id, UserRef::Id(target)).await;
                    banned = r.is_ok();
                    r.map_err(|e| (e, [AlreadyBanned].as_slice()))
                }
                Action::Unban => {
                    banned = false;
                    oc.unban(id, target)
                        .await
                        .map_err(|e| (e, [NotBanned].as_slice()))
                }
                Action::Talk => {
                    for _ in 0..3 {
                        if guest.rooms.borrow().contains(&id) {
                            let _ = send(&soak, &guest, &gc, id, |_| false).await;
                        }
                    }
                    continue;
                }
                Action::TalkBanned => {
                    // The send must be refused if the ban certainly went
                    // through; after an interrupted ban it may not have.
                    let refused = |c| matches!(c, Banned | NotAMember);
                    if send(&soak, &guest, &gc, id, refused).await.is_ok() && banned {
                        soak.ledger.borrow_mut().unexpected.push(|| {
                            format!("{}: a banned guest's message was accepted", step("talk"))
                        });
                    }
                    continue;
                }
            };
            let mut ledger = soak.ledger.borrow_mut();
            match result {
                Ok(()) => ledger.counters.governance += 1,
                Err((e, out_of_step)) => match outcome(&e) {
                    Outcome::Interrupted => ledger.counters.interrupted += 1,
                    Outcome::Refused(code) if out_of_step.contains(&code) => {
                        ledger.counters.governance_out_of_step += 1
                    }
                    _ => ledger
                        .unexpected
                        .push(|| format!("{}: {e}", step(action.name()))),
                },
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Invite,
    Accept,
    Talk,
    Kick,
    Ban,
    TalkBanned,
    Unban,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Invite => "invite",
            Action::Accept => "accept",
            Action::Talk => "talk",
            Action::Kick => "kick",
            Action::Ban => "ban",
            Action::TalkBanned => "talk while banned",
            Action::Unban => "unban",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_sdk::{EventBody, Seq, UserId};

    fn at(seq: u64) -> RoomEvent {
        RoomEvent {
            room: RoomId(1),
            seq: Seq(seq),
            at: 0,
            actor: UserId(1),
            actor_name: "a".into(),
            body: EventBody::MemberJoined,
        }
    }

    #[test]
    fn a_history_page_must_be_consecutive_newest_first() {
        assert_eq!(page_fault(&[at(5), at(4), at(3)]), None);
        assert_eq!(page_fault(&[]), None);
        assert!(page_fault(&[at(5), at(3)]).is_some());
        assert!(page_fault(&[at(3), at(4)]).is_some());
    }
}
