//! The soak's people and rooms, and the SDK clients that stand for them.
//!
//! - **Chatters** send messages to the rooms they belong to. Chatter `r`
//!   owns public room `r`; every chatter belongs to two public rooms; the
//!   private rooms have an owner and two more members among the chatters.
//! - **Guests**, one per private room, are invited, accepted, kicked,
//!   banned and unbanned there by the governance loop.
//! - **Visitors** belong to one public room each and only ever log in with
//!   their password for a short session (fresh sessions under load).
//!
//! Every chatter and guest holds one SDK client that reconnects by itself
//! (with resume) after a server restart, and an event reader that records
//! what arrives in the [`Ledger`]. Users are registered on first use and
//! logged in on later runs against the same data directory; rooms are new
//! on every run.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;

use anyhow::Context;
use confab_sdk::{
    Client, ConnectOptions, ErrorCode, Event, EventBody, ReconnectPolicy, ResumePoint, RoomId,
    UserId, UserRef, Visibility,
};

use super::ledger::{Follow, Generation, Ledger, Tag};
use crate::setup::PASSWORD;

/// Generous: a request may wait out a restart.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The state every task of the soak shares (one thread: `Rc`, `Cell`).
pub struct Soak {
    pub url: String,
    pub tag: Tag,
    pub ledger: RefCell<Ledger>,
    /// The server process running now (or being started).
    pub generation: Cell<Generation>,
    /// Set when traffic ends: every loop finishes its current step.
    pub stop: Cell<bool>,
    pub chatters: Vec<Rc<SoakUser>>,
    pub guests: Vec<Rc<SoakUser>>,
    pub visitors: Vec<Rc<SoakUser>>,
    pub public: Vec<RoomId>,
    /// Private rooms with their owner (a chatter) and their guest.
    pub private: Vec<PrivateRoom>,
}

pub struct PrivateRoom {
    pub id: RoomId,
    pub owner: Rc<SoakUser>,
    pub guest: Rc<SoakUser>,
}

/// One user and (for chatters and guests) its long-lived client.
pub struct SoakUser {
    /// The user's number in message texts.
    pub index: u32,
    pub name: String,
    pub id: UserId,
    pub token: String,
    /// The client in use; `None` while it is being replaced.
    client: RefCell<Option<Client>>,
    /// Whether it has a long-lived client with an event reader (chatters
    /// and guests).
    pub listens: bool,
    /// The rooms its messages may go to.
    pub rooms: RefCell<BTreeSet<RoomId>>,
    /// The rooms it owns (and never leaves).
    pub owns: RefCell<BTreeSet<RoomId>>,
    /// The rooms it follows and the last seq it received in each.
    pub follow: RefCell<Follow>,
    /// The server process its current connection is to.
    pub generation: Cell<Generation>,
    /// Messages it has sent (numbers its message texts).
    sent: Cell<u32>,
    reader: RefCell<Option<tokio::task::JoinHandle<()>>>,
}

impl SoakUser {
    pub fn client(&self) -> Option<Client> {
        self.client.borrow().clone()
    }

    /// The next message number.
    pub fn next_message(&self) -> u32 {
        let n = self.sent.get() + 1;
        self.sent.set(n);
        n
    }

    /// Picks one of its rooms at random.
    pub fn any_room(&self) -> Option<RoomId> {
        let rooms = self.rooms.borrow();
        let i = rand::random::<usize>() % rooms.len().max(1);
        rooms.iter().nth(i).copied()
    }
}

/// Options of the long-lived clients: reconnect quickly (the server comes
/// back within a second or two), resume, wait out restarts.
pub fn options() -> ConnectOptions {
    ConnectOptions::new()
        .with_request_timeout(REQUEST_TIMEOUT)
        .with_connect_timeout(Duration::from_secs(5))
        .with_reconnect(ReconnectPolicy::exponential(
            Duration::from_millis(100),
            Duration::from_secs(2),
        ))
}

/// Options of a short session (no reconnection).
pub fn short_options() -> ConnectOptions {
    ConnectOptions::new()
        .with_request_timeout(REQUEST_TIMEOUT)
        .with_connect_timeout(Duration::from_secs(5))
}

/// How many of each.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub chatters: usize,
    pub public_rooms: usize,
    pub private_rooms: usize,
    pub visitors: usize,
}

/// Registers (or logs in) everyone, creates the rooms and memberships,
/// and starts every chatter's and guest's event reader.
pub async fn populate(url: &str, prefix: &str, shape: Shape, tag: Tag) -> anyhow::Result<Rc<Soak>> {
    let Shape {
        chatters,
        public_rooms,
        private_rooms,
        visitors,
    } = shape;
    anyhow::ensure!(
        public_rooms >= 1 && chatters >= public_rooms.max(3),
        "a soak needs at least one public room and as many chatters as public rooms (and 3)"
    );
    let mut index = 0u32;
    let mut people = |kind: &str, n: usize| {
        let names: Vec<(u32, String)> = (0..n)
            .map(|i| {
                index += 1;
                (index, format!("{prefix}-{kind}{i}"))
            })
            .collect();
        names
    };
    let (c_names, g_names, v_names) = (
        people("c", chatters),
        people("g", private_rooms),
        people("v", visitors),
    );
    let mut chatter_users = Vec::new();
    for (i, name) in c_names {
        chatter_users.push(user(url, i, &name, true).await?);
    }
    let mut guest_users = Vec::new();
    for (i, name) in g_names {
        guest_users.push(user(url, i, &name, true).await?);
    }
    let mut visitor_users = Vec::new();
    for (i, name) in v_names {
        visitor_users.push(user(url, i, &name, false).await?);
    }

    let client = |u: &SoakUser| u.client().context("a client during set-up");
    let mut public = Vec::new();
    for (r, owner) in chatter_users.iter().take(public_rooms).enumerate() {
        let name = format!("soak {} public {r}", tag.0);
        let room = client(owner)?
            .create_room(&name, "soak", Visibility::Public)
            .await
            .with_context(|| format!("creating {name}"))?;
        owner.rooms.borrow_mut().insert(room.id);
        owner.owns.borrow_mut().insert(room.id);
        public.push(room.id);
    }
    for (i, u) in chatter_users.iter().enumerate() {
        for k in 0..public_rooms.min(2) {
            let room = public[(i + k) % public_rooms];
            if u.rooms.borrow().contains(&room) {
                continue;
            }
            client(u)?
                .join_room(room)
                .await
                .with_context(|| format!("{} joining room {room}", u.name))?;
            u.rooms.borrow_mut().insert(room);
        }
    }
    for (k, v) in visitor_users.iter().enumerate() {
        let room = public[k % public_rooms];
        let c = Client::connect(url, short_options().with_token(v.token.clone())).await?;
        match c.join_room(room).await {
            Ok(_) => {}
            Err(e) if e.code() == Some(ErrorCode::AlreadyMember) => {}
            Err(e) => return Err(e).with_context(|| format!("{} joining room {room}", v.name)),
        }
        c.close().await;
        v.rooms.borrow_mut().insert(room);
    }
    let mut private = Vec::new();
    for (p, guest) in guest_users.iter().enumerate() {
        let at = |k: usize| chatter_users[(public_rooms + p + k) % chatters].clone();
        let owner = at(0);
        let name = format!("soak {} private {p}", tag.0);
        let room = client(&owner)?
            .create_room(&name, "soak governance", Visibility::Private)
            .await
            .with_context(|| format!("creating {name}"))?;
        owner.rooms.borrow_mut().insert(room.id);
        owner.owns.borrow_mut().insert(room.id);
        for k in 1..=2 {
            let member = at(k);
            client(&owner)?
                .invite(room.id, UserRef::Id(member.id))
                .await
                .with_context(|| format!("inviting {} to {name}", member.name))?;
            client(&member)?
                .accept_invite(room.id)
                .await
                .with_context(|| format!("{} accepting {name}", member.name))?;
            member.rooms.borrow_mut().insert(room.id);
        }
        private.push(PrivateRoom {
            id: room.id,
            owner,
            guest: guest.clone(),
        });
    }
    let soak = Rc::new(Soak {
        url: url.to_owned(),
        tag,
        ledger: RefCell::new(Ledger::default()),
        generation: Cell::new(0),
        stop: Cell::new(false),
        chatters: chatter_users,
        guests: guest_users,
        visitors: visitor_users,
        public,
        private,
    });
    for u in soak.chatters.iter().chain(&soak.guests) {
        let c = u.client().context("a client after set-up")?;
        spawn_reader(&soak, u, c);
    }
    Ok(soak)
}

/// Registers `name` (or logs in, if it exists): a user with its session
/// token, and its long-lived client if `keep`.
async fn user(url: &str, index: u32, name: &str, keep: bool) -> anyhow::Result<Rc<SoakUser>> {
    let c = Client::connect(url, options())
        .await
        .with_context(|| format!("connecting {name}"))?;
    let session = match c.register(name, PASSWORD).await {
        Err(e) if e.code() == Some(ErrorCode::UsernameTaken) => c.login(name, PASSWORD).await,
        other => other,
    }
    .with_context(|| format!("registering {name}"))?;
    if !keep {
        c.close().await;
    }
    Ok(Rc::new(SoakUser {
        index,
        name: name.to_owned(),
        id: session.user,
        token: session.token,
        listens: keep,
        client: RefCell::new(keep.then_some(c)),
        rooms: RefCell::new(BTreeSet::new()),
        owns: RefCell::new(BTreeSet::new()),
        follow: RefCell::new(Follow::default()),
        generation: Cell::new(0),
        sent: Cell::new(0),
        reader: RefCell::new(None),
    }))
}

/// Records everything `client` receives for `user` until its event stream
/// ends (the client closed).
fn spawn_reader(soak: &Rc<Soak>, user: &Rc<SoakUser>, client: Client) {
    let (soak, u) = (soak.clone(), user.clone());
    let task = tokio::task::spawn_local(async move {
        let mut events = client.events();
        drop(client);
        while let Some(event) = events.next().await {
            match event {
                Event::Room(ev) => {
                    if let Err(fault) = u.follow.borrow_mut().on_event(u.id, &ev) {
                        let who = &u.name;
                        soak.ledger
                            .borrow_mut()
                            .delivery_faults
                            .push(|| format!("{who}: {fault}"));
                    }
                    let removed = match &ev.body {
                        EventBody::MemberKicked { target, .. }
                        | EventBody::MemberBanned { target, .. } => *target == u.id,
                        _ => false,
                    };
                    if removed {
                        u.rooms.borrow_mut().remove(&ev.room);
                    }
                    let mut ledger = soak.ledger.borrow_mut();
                    ledger.observe(&ev, u.generation.get(), &soak.tag);
                    if let Some(id) = soak.tag.message(&ev).filter(|id| id.user == u.index) {
                        ledger.own_received(id);
                    }
                }
                Event::ResumeGap { room, last_seq } => {
                    let lost = u.follow.borrow_mut().on_gap(room, last_seq);
                    let counters = &mut soak.ledger.borrow_mut().counters;
                    counters.resume_gaps += 1;
                    counters.resume_gaps_after_loss += u64::from(lost);
                }
                Event::Reconnected => {
                    u.generation.set(soak.generation.get());
                    soak.ledger.borrow_mut().counters.reconnects += 1;
                }
                Event::Overflow(o) => {
                    let who = &u.name;
                    soak.ledger.borrow_mut().delivery_faults.push(|| {
                        format!("{who}: {} events dropped by an unbounded buffer", o.dropped)
                    });
                }
                _ => {}
            }
        }
    });
    *user.reader.borrow_mut() = Some(task);
}

/// Closes `user`'s client and waits until its reader has taken every event
/// it had received. Its sends fail until [`reconnect`].
pub async fn disconnect(user: &SoakUser) {
    let client = user.client.borrow_mut().take();
    if let Some(c) = client {
        c.close().await;
    }
    let reader = user.reader.borrow_mut().take();
    if let Some(task) = reader {
        let _ = task.await;
    }
}

/// A new client for `user`, authenticated by its token and resuming every
/// room it follows after the last seq it received: the application's side
/// of SPEC §9. Retries while the server is restarting.
pub async fn reconnect(soak: &Rc<Soak>, user: &Rc<SoakUser>) -> anyhow::Result<()> {
    let resume: Vec<ResumePoint> = user.follow.borrow().resume_points();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let generation = soak.generation.get();
        let attempt = Client::connect(
            &soak.url,
            options()
                .with_token(user.token.clone())
                .with_resume(resume.clone()),
        )
        .await;
        match attempt {
            Ok(c) => {
                user.generation.set(generation);
                *user.client.borrow_mut() = Some(c.clone());
                spawn_reader(soak, user, c);
                return Ok(());
            }
            Err(e) if tokio::time::Instant::now() > deadline => {
                return Err(e).with_context(|| format!("reconnecting {}", user.name));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
