//! Cluster failure behaviour with real processes (issue 16): `confabd`
//! nodes as child processes of the test, each with `--cluster-nats` to a
//! nats-server the test starts itself on a free port (`common::nats`) and
//! `--database-url` to a fresh database on the test Postgres
//! (`DATABASE_URL`, else a throwaway cluster; without one each test says
//! it was skipped — or fails under `CONFAB_REQUIRE_POSTGRES=1`).
//!
//! Short leases (`--lease-ms`) make expiry take a second or two. Every
//! wait is bounded polling of an observable outcome (acknowledgements,
//! events, the lease table), never a fixed sleep; every child is killed
//! when its handle drops.
//!
//! - kill -9 of the node owning a busy room while four senders on the
//!   other nodes keep sending: every acknowledged message is in history
//!   once and in order, and every subscriber — on surviving nodes, and
//!   one of the dead node that reconnects elsewhere and resumes — gets
//!   every acknowledged message once, in order;
//! - fencing: an owner paused (SIGSTOP) past its lease commits nothing
//!   more once resumed (SIGCONT) — what its clients sent is refused or
//!   forwarded to the new owner, never acknowledged and lost;
//! - a nats-server restart under load: nothing acknowledged is lost,
//!   commands during the outage are answered `ROOM_MOVING`, traffic and
//!   events flow again after it;
//! - a fourth node joining spreads the partitions over four; SIGTERM of a
//!   node hands its partitions over well before its leases would expire,
//!   and its clients reconnect to another node.

mod common;
#[path = "common/confabd.rs"]
mod confabd;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::nats::NatsServer;
use confab_protocol::{ErrorCode, EventBody, RoomId, Seq, Visibility};
use confab_sdk::{Client, ConnectOptions, Event, ReconnectPolicy};
use confab_testkit::postgres::TestDatabase;
use confabd::Confabd;
use sqlx::Connection;

/// A cluster of `confabd` processes on one database and one nats-server.
struct Cluster {
    db: TestDatabase,
    nats: NatsServer,
    nodes: Vec<Option<Node>>,
    partitions: u32,
    lease_ms: u64,
}

struct Node {
    name: String,
    proc: Confabd,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// `None`: no Postgres or nats-server (the test is skipped).
    async fn start(test: &str, nodes: usize, partitions: u32, lease_ms: u64) -> Option<Cluster> {
        let db = TestDatabase::create(test).await?;
        let nats = NatsServer::start(test).await?;
        let mut cluster = Cluster {
            db,
            nats,
            nodes: Vec::new(),
            partitions,
            lease_ms,
        };
        for _ in 0..nodes {
            cluster.add_node().await;
        }
        cluster.balanced().await;
        Some(cluster)
    }

    /// Starts one more node (named `n0`, `n1`, …).
    async fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        let name = format!("n{i}");
        let dir = tempfile::tempdir().expect("temp dir");
        let (nats, db) = (self.nats.url(), self.db.url().to_owned());
        let (partitions, lease) = (self.partitions.to_string(), self.lease_ms.to_string());
        let node_name = name.clone();
        let path = dir.path().to_path_buf();
        let proc = tokio::task::spawn_blocking(move || {
            Confabd::start_with(
                &path,
                Some(&db),
                &[
                    "--cluster-nats",
                    &nats,
                    "--node-id",
                    &node_name,
                    "--cluster-partitions",
                    &partitions,
                    "--lease-ms",
                    &lease,
                ],
            )
        })
        .await
        .expect("start a node");
        self.nodes.push(Some(Node {
            name,
            proc,
            _dir: dir,
        }));
        i
    }

    fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("a running node")
    }

    fn url(&self, i: usize) -> String {
        self.node(i).proc.url()
    }

    /// How many lines of the running nodes' logs contain `what`.
    fn log_count(&self, what: &str) -> usize {
        let logs = self.nodes.iter().flatten().map(|n| n.proc.log_text());
        logs.map(|l| l.lines().filter(|line| line.contains(what)).count())
            .sum()
    }

    /// The running nodes' log lines that contain `what`.
    fn log_lines(&self, what: &str) -> Vec<String> {
        let logs = self.nodes.iter().flatten().map(|n| n.proc.log_text());
        logs.flat_map(|l| {
            l.lines()
                .filter(|line| line.contains(what))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
    }

    /// Takes node `i` out (to kill or stop it).
    fn take(&mut self, i: usize) -> Node {
        self.nodes[i].take().expect("a running node")
    }

    /// Partitions held now (unexpired), by node name.
    async fn leases(&self) -> HashMap<String, Vec<u32>> {
        let mut conn = sqlx::PgConnection::connect(self.db.url())
            .await
            .expect("connect");
        let rows: Vec<(i32, String)> = sqlx::query_as(
            "SELECT part, owner_node FROM partition_leases \
             WHERE expires_at > now() AND owner_node IS NOT NULL",
        )
        .fetch_all(&mut conn)
        .await
        .expect("read the lease table");
        let _ = conn.close().await;
        let mut held: HashMap<String, Vec<u32>> = HashMap::new();
        for (part, node) in rows {
            held.entry(node).or_default().push(part as u32);
        }
        held
    }

    /// Waits (bounded) until every running node holds its share of the
    /// partitions and every partition is held.
    async fn balanced(&self) {
        let running: Vec<String> = self
            .nodes
            .iter()
            .flatten()
            .map(|n| n.name.clone())
            .collect();
        let (p, n) = (self.partitions as usize, running.len());
        let fair = |count: usize| count == p / n || count == p.div_ceil(n);
        let held = poll(Duration::from_secs(30), "partitions balanced", || async {
            let held = self.leases().await;
            let total: usize = held.values().map(Vec::len).sum();
            let ok = total == p
                && held.len() == n
                && running
                    .iter()
                    .all(|name| held.get(name).is_some_and(|h| fair(h.len())));
            ok.then_some(held)
        })
        .await;
        eprintln!("leases: {held:?}");
    }

    /// The node holding `room`'s partition now.
    async fn owner_of(&self, room: RoomId) -> Option<String> {
        let part = (room.0 % u64::from(self.partitions)) as u32;
        let held = self.leases().await;
        held.into_iter()
            .find(|(_, parts)| parts.contains(&part))
            .map(|(node, _)| node)
    }
}

/// Polls `check` (every 50 ms) until it gives `Some`, at most `within`.
async fn poll<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn options() -> ConnectOptions {
    ConnectOptions::new().with_request_timeout(Duration::from_secs(15))
}

/// Registers `name` on `url` (the SDK reconnects when `reconnect`).
async fn user(url: &str, name: &str, reconnect: bool) -> Client {
    let mut o = options();
    if reconnect {
        o = o.with_reconnect(ReconnectPolicy::exponential(
            Duration::from_millis(20),
            Duration::from_millis(200),
        ));
    }
    let c = Client::connect(url, o).await.expect("connect");
    c.register(name, "password-1234").await.expect("register");
    c
}

/// Whether `e` is an answer the client retries (nothing acknowledged).
fn retryable(e: &confab_sdk::Error) -> bool {
    matches!(
        e.code(),
        Some(ErrorCode::RoomMoving | ErrorCode::StorageUnavailable | ErrorCode::Overloaded)
    ) || matches!(e, confab_sdk::Error::Timeout)
}

/// Runs `op` until it succeeds, retrying retryable refusals (bounded).
async fn retrying<T, F, Fut>(what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, confab_sdk::Error>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match op().await {
            Ok(v) => return v,
            Err(e) if retryable(&e) && Instant::now() < deadline => {
                tokio::time::sleep(e.retry_after().unwrap_or(Duration::from_millis(100))).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// What became of each message a sender sent.
#[derive(Default)]
struct Outcomes {
    /// Acknowledged, in the order acknowledged (body, seq).
    acked: Vec<(String, u64)>,
    /// Refused with a code that says nothing was stored.
    refused: Vec<(String, ErrorCode)>,
    /// `ROOM_MOVING` or a timeout: it may or may not have been stored.
    unknown: Vec<String>,
    /// Bodies whose send was refused with ROOM_MOVING (then retried).
    moving: usize,
}

/// A sender: sends `prefix-N` into `room` one after another until `stop`,
/// retrying (with a new body) what was refused with a retryable code.
fn sender(
    c: Client,
    room: RoomId,
    prefix: String,
    stop: Arc<AtomicBool>,
) -> (Arc<Mutex<Outcomes>>, tokio::task::JoinHandle<()>) {
    let out = Arc::new(Mutex::new(Outcomes::default()));
    let o = out.clone();
    let task = tokio::spawn(async move {
        let mut n = 0u32;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let body = format!("{prefix}-{n}");
            match c.send_message(room, &body).await {
                Ok(ack) => o.lock().unwrap().acked.push((body, ack.seq.0)),
                Err(e) => {
                    {
                        let mut o = o.lock().unwrap();
                        match e.code() {
                            Some(ErrorCode::RoomMoving) => {
                                o.moving += 1;
                                o.unknown.push(body);
                            }
                            Some(code) if retryable(&e) => o.refused.push((body, code)),
                            _ if matches!(e, confab_sdk::Error::Timeout) => o.unknown.push(body),
                            _ => panic!("{prefix}: unexpected answer {e}"),
                        }
                    }
                    let wait = e.retry_after().unwrap_or(Duration::from_millis(50));
                    tokio::time::sleep(wait).await;
                }
            }
        }
    });
    (out, task)
}

fn acked_count(outcomes: &[Arc<Mutex<Outcomes>>]) -> Vec<usize> {
    outcomes
        .iter()
        .map(|o| o.lock().unwrap().acked.len())
        .collect()
}

/// Senders running until [`Senders::stop`].
struct Senders {
    stop: Arc<AtomicBool>,
    outcomes: Vec<Arc<Mutex<Outcomes>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Senders {
    /// One sender per client, its messages `prefix0-N`, `prefix1-N`, …
    fn start(clients: &[Client], room: RoomId, prefix: &str) -> Senders {
        let mut senders = Senders {
            stop: Arc::new(AtomicBool::new(false)),
            outcomes: Vec::new(),
            tasks: Vec::new(),
        };
        for (i, c) in clients.iter().enumerate() {
            senders.add(c, room, format!("{prefix}{i}"));
        }
        senders
    }

    fn add(&mut self, c: &Client, room: RoomId, name: String) {
        let (out, task) = sender(c.clone(), room, name, self.stop.clone());
        self.outcomes.push(out);
        self.tasks.push(task);
    }

    /// Messages acknowledged so far, per sender.
    fn acked(&self) -> Vec<usize> {
        acked_count(&self.outcomes)
    }

    /// Waits (bounded) until every sender has `n` more messages
    /// acknowledged than `since` says (none: than at the start).
    async fn each_acked(&self, since: Option<&[usize]>, n: usize, what: &str) {
        poll(Duration::from_secs(30), what, || async {
            let now = self.acked();
            let base = |i: usize| since.map_or(0, |s| s.get(i).copied().unwrap_or(0));
            now.iter()
                .enumerate()
                .all(|(i, &a)| a >= base(i) + n)
                .then_some(())
        })
        .await;
    }

    /// ROOM_MOVING answers of sender `i` so far.
    fn moving(&self, i: usize) -> usize {
        self.outcomes[i].lock().unwrap().moving
    }

    async fn stop(self) -> Vec<Arc<Mutex<Outcomes>>> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("sender");
        }
        self.outcomes
    }
}

/// `n` users registered as `prefixI`, user `i` on the node of `url(i)`.
async fn users(n: usize, prefix: &str, url: impl Fn(usize) -> String) -> Vec<Client> {
    let all = (0..n).map(|i| {
        let (url, name) = (url(i), format!("{prefix}{i}"));
        async move { user(&url, &name, false).await }
    });
    futures_util::future::join_all(all).await
}

/// What a subscriber received of one room: (seq, text) of the messages,
/// as the client ends up with them after RESUME_GAPs (SPEC.md §9: drop
/// what is past `last_seq`, reload history up to it).
#[derive(Default)]
struct Received {
    messages: Vec<(u64, String)>,
    gaps: usize,
}

fn subscriber(c: Client, room: RoomId) -> (Arc<Mutex<Received>>, tokio::task::JoinHandle<()>) {
    let got = Arc::new(Mutex::new(Received::default()));
    let g = got.clone();
    let task = tokio::spawn(async move {
        while let Some(event) = c.next_event().await {
            match event {
                Event::Room(ev) if ev.room == room => {
                    if let EventBody::Message { text, .. } = ev.body {
                        let mut g = g.lock().unwrap();
                        let last = g.messages.last().map_or(0, |m| m.0);
                        assert!(ev.seq.0 > last, "seq {} after {last}", ev.seq.0);
                        g.messages.push((ev.seq.0, text));
                    }
                }
                Event::ResumeGap { room: r, last_seq } if r == room => {
                    let kept = {
                        let mut g = g.lock().unwrap();
                        g.gaps += 1;
                        g.messages.retain(|m| m.0 <= last_seq.0);
                        g.messages.last().map_or(0, |m| m.0)
                    };
                    // Reload what lies between what is kept and last_seq.
                    let mut reloaded = Vec::new();
                    let mut before = last_seq.0 + 1;
                    while before > kept + 1 {
                        let page = retrying("history after a gap", || {
                            c.history(room, Some(Seq(before)), 200)
                        })
                        .await;
                        let Some(oldest) = page.events.last().map(|e| e.seq.0) else {
                            break;
                        };
                        for ev in page.events {
                            if let (true, EventBody::Message { text, .. }) =
                                (ev.seq.0 > kept, ev.body)
                            {
                                reloaded.push((ev.seq.0, text));
                            }
                        }
                        before = oldest;
                    }
                    reloaded.sort();
                    g.lock().unwrap().messages.extend(reloaded);
                }
                _ => {}
            }
        }
    });
    (got, task)
}

/// The room's messages in history, oldest first, asserting that their
/// seqs strictly increase and no body repeats.
async fn history(c: &Client, room: RoomId) -> Vec<(u64, String)> {
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let page = retrying("history", || c.history(room, before, 200)).await;
        let Some(oldest) = page.events.last().map(|e| e.seq) else {
            break;
        };
        for ev in page.events {
            if let EventBody::Message { text, .. } = ev.body {
                all.push((ev.seq.0, text));
            }
        }
        if !page.has_more {
            break;
        }
        before = Some(oldest);
    }
    all.reverse();
    for w in all.windows(2) {
        assert!(w[0].0 < w[1].0, "history seqs out of order: {w:?}");
    }
    let mut bodies = HashSet::new();
    for (_, body) in &all {
        assert!(bodies.insert(body.clone()), "{body} twice in history");
    }
    all
}

/// Every acknowledged message is in history exactly once, at the seq its
/// acknowledgement gave; returns them in history order.
fn acked_in_history(history: &[(u64, String)], outcomes: &[Arc<Mutex<Outcomes>>]) -> Vec<String> {
    let at: HashMap<&str, u64> = history.iter().map(|(s, b)| (b.as_str(), *s)).collect();
    let mut acked = HashSet::new();
    for o in outcomes {
        for (body, seq) in &o.lock().unwrap().acked {
            assert_eq!(
                at.get(body.as_str()),
                Some(seq),
                "acknowledged {body} (seq {seq}) is not in history at its seq"
            );
            acked.insert(body.clone());
        }
    }
    history
        .iter()
        .filter(|(_, b)| acked.contains(b))
        .map(|(_, b)| b.clone())
        .collect()
}

/// Waits (bounded) until `got` holds every acknowledged message, then
/// checks it holds each once, in history's order.
async fn received_all(who: &str, got: &Arc<Mutex<Received>>, acked: &[String]) {
    let wanted: HashSet<&String> = acked.iter().collect();
    poll(Duration::from_secs(20), who, || async {
        let g = got.lock().unwrap();
        let have: HashSet<&String> = g.messages.iter().map(|m| &m.1).collect();
        wanted.iter().all(|b| have.contains(*b)).then_some(())
    })
    .await;
    let g = got.lock().unwrap();
    let seen: Vec<&String> = g
        .messages
        .iter()
        .map(|m| &m.1)
        .filter(|b| wanted.contains(b))
        .collect();
    let expected: Vec<&String> = acked.iter().collect();
    assert_eq!(
        seen, expected,
        "{who}: acknowledged messages once each, in order"
    );
    eprintln!(
        "{who}: {} messages, {} RESUME_GAP",
        g.messages.len(),
        g.gaps
    );
}

/// A room created on node `owner` (a node creates rooms in partitions it
/// serves), with `members` joined.
async fn room_on(owner: &Client, name: &str, members: &[&Client]) -> RoomId {
    let room = retrying("create the room", || {
        owner.create_room(name, "", Visibility::Public)
    })
    .await
    .id;
    for m in members {
        retrying("join", || m.join_room(room)).await;
    }
    room
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_owner_of_a_busy_room_loses_no_acknowledged_message() {
    let Some(mut cluster) = Cluster::start("failover_kill9", 3, 6, 1500).await else {
        return;
    };
    let owner = user(&cluster.url(0), "owner", false).await;
    let senders = users(4, "sender", |i| cluster.url(1 + i % 2)).await;
    let sub_b = user(&cluster.url(1), "sub_b", false).await;
    let sub_c = user(&cluster.url(2), "sub_c", false).await;
    // A subscriber of the dead node: it reconnects to the others and
    // resumes there.
    let all = format!("{},{},{}", cluster.url(0), cluster.url(1), cluster.url(2));
    let sub_a = user(&all, "sub_a", true).await;
    let mut members: Vec<&Client> = senders.iter().collect();
    members.extend([&sub_b, &sub_c, &sub_a]);
    let room = room_on(&owner, "busy", &members).await;
    assert_eq!(cluster.owner_of(room).await.as_deref(), Some("n0"));

    let subs = [("sub_b", &sub_b), ("sub_c", &sub_c), ("sub_a", &sub_a)]
        .map(|(name, c)| (name, subscriber(c.clone(), room)));
    let running = Senders::start(&senders, room, "s");
    running
        .each_acked(None, 10, "traffic before the kill")
        .await;

    let killed = Instant::now();
    cluster.take(0).proc.kill_9();
    let before = running.acked();
    let new_owner = poll(Duration::from_secs(20), "takeover", || async {
        cluster.owner_of(room).await.filter(|o| o != "n0")
    })
    .await;
    let taken = killed.elapsed();
    // Every sender gets 15 more messages acknowledged by the new owner.
    running
        .each_acked(Some(&before), 15, "traffic after the takeover")
        .await;
    let recovered = killed.elapsed();
    let outcomes = running.stop().await;
    let moving: usize = outcomes.iter().map(|o| o.lock().unwrap().moving).sum();
    assert!(
        moving > 0,
        "senders were answered ROOM_MOVING while nobody served the room"
    );
    eprintln!(
        "kill -9: partition taken by {new_owner} {taken:?} after the kill (lease 1.5 s), \
         every sender 15 messages further {recovered:?} after it; {moving} ROOM_MOVING answers retried; \
         gap fills: {}",
        cluster.log_count("asking its owner")
    );

    let history = history(&sub_b, room).await;
    let acked = acked_in_history(&history, &outcomes);
    assert!(acked.len() >= 4 * 25);
    for (name, (got, _)) in &subs {
        received_all(name, got, &acked).await;
    }
    for line in cluster.log_lines("RESUME_GAP") {
        eprintln!("{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_owner_commits_nothing_once_another_node_took_over() {
    let Some(mut cluster) = Cluster::start("failover_sigstop", 3, 6, 1500).await else {
        return;
    };
    let owner = user(&cluster.url(0), "owner", false).await;
    // Clients of the owner that will be paused with it, and one elsewhere.
    let local = users(3, "local", |_| cluster.url(0)).await;
    let remote = user(&cluster.url(1), "remote", false).await;
    let mut members: Vec<&Client> = local.iter().collect();
    members.push(&remote);
    let room = room_on(&owner, "fenced", &members).await;
    assert_eq!(cluster.owner_of(room).await.as_deref(), Some("n0"));

    let mut running = Senders::start(&local, room, "local");
    running
        .each_acked(None, 10, "traffic before the pause")
        .await;

    let paused = cluster.take(0);
    paused.proc.signal("STOP");
    let stopped = Instant::now();
    let acked_before_pause = running.acked();
    // Another node takes the partition over once the lease expired…
    let new_owner = poll(
        Duration::from_secs(20),
        "takeover of a paused owner",
        || async { cluster.owner_of(room).await.filter(|o| o != "n0") },
    )
    .await;
    let taken = stopped.elapsed();
    // …and commits: the remote sender's messages are acknowledged.
    running.add(&remote, room, "remote".into());
    poll(Duration::from_secs(20), "the new owner commits", || async {
        (running.acked()[3] >= 10).then_some(())
    })
    .await;

    paused.proc.signal("CONT");
    // The resumed node's clients: whatever they had in flight, and what
    // they send now, is refused or goes to the new owner.
    let after_cont = running.acked();
    running
        .each_acked(Some(&after_cont), 5, "the paused node's clients go on")
        .await;
    let outcomes = running.stop().await;

    let history = history(&remote, room).await;
    let acked = acked_in_history(&history, &outcomes);
    // Nothing refused was stored: in particular nothing of what the
    // paused node applied under its lost epoch.
    let stored: HashSet<&str> = history.iter().map(|(_, b)| b.as_str()).collect();
    let mut refused = 0;
    for o in &outcomes {
        for (body, code) in &o.lock().unwrap().refused {
            refused += 1;
            assert!(
                !stored.contains(body.as_str()),
                "{body} was refused ({code:?}) but stored"
            );
        }
    }
    // Everything in history was acknowledged or had an unknown outcome.
    let unknown: HashSet<String> = outcomes
        .iter()
        .flat_map(|o| o.lock().unwrap().unknown.clone())
        .collect();
    let acked_set: HashSet<&String> = acked.iter().collect();
    for (_, body) in &history {
        assert!(
            acked_set.contains(body) || unknown.contains(body),
            "{body} is in history but was never acknowledged"
        );
    }
    eprintln!(
        "paused owner: taken over by {new_owner} {taken:?} after SIGSTOP (lease 1.5 s); \
         acked before the pause {acked_before_pause:?}; {refused} refused, {} unknown",
        unknown.len()
    );
    // The paused node learnt it lost the partition.
    poll(
        Duration::from_secs(10),
        "the paused node noticed",
        || async {
            paused
                .proc
                .log_text()
                .contains("partition no longer served")
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nats_restart_under_load_loses_no_acknowledged_message() {
    let Some(mut cluster) = Cluster::start("failover_nats_restart", 3, 6, 1500).await else {
        return;
    };
    let owner = user(&cluster.url(0), "owner", false).await;
    let senders = users(4, "sender", |i| cluster.url(i % 3)).await;
    let sub_b = user(&cluster.url(1), "sub_b", false).await;
    let sub_c = user(&cluster.url(2), "sub_c", false).await;
    let mut members: Vec<&Client> = senders.iter().collect();
    members.extend([&sub_b, &sub_c]);
    let room = room_on(&owner, "through", &members).await;

    let subs =
        [("sub_b", &sub_b), ("sub_c", &sub_c)].map(|(n, c)| (n, subscriber(c.clone(), room)));
    let running = Senders::start(&senders, room, "s");
    running
        .each_acked(None, 10, "traffic before the outage")
        .await;

    cluster.nats.kill().await;
    let down = Instant::now();
    // The senders of the nodes that do not own the room (s1, s2) are
    // answered ROOM_MOVING while NATS is down; those of the owner (s0,
    // s3) go on, and the events of their messages do not reach the other
    // nodes until NATS is back.
    let moving_before: Vec<usize> = (0..4).map(|i| running.moving(i)).collect();
    let acked_before = running.acked();
    poll(
        Duration::from_secs(20),
        "ROOM_MOVING during the outage",
        || async {
            let acked = running.acked();
            let refused = [1, 2]
                .iter()
                .all(|&i| running.moving(i) >= moving_before[i] + 3);
            let local = [0, 3].iter().all(|&i| acked[i] >= acked_before[i] + 20);
            (refused && local).then_some(())
        },
    )
    .await;
    cluster.nats.restart().await;
    let outage = down.elapsed();
    let before = running.acked();
    running
        .each_acked(Some(&before), 10, "traffic after the restart")
        .await;
    let flowing = down.elapsed();
    let moving: usize = (0..4).map(|i| running.moving(i)).sum();
    let outcomes = running.stop().await;
    eprintln!(
        "nats outage {outage:?}; every sender 10 messages further {flowing:?} after it began; \
         {moving} ROOM_MOVING; gap fills: {}; probes after reconnecting: {}",
        cluster.log_count("asking its owner"),
        cluster.log_count("checking the watched rooms")
    );

    let history = history(&sub_b, room).await;
    let acked = acked_in_history(&history, &outcomes);
    for (name, (got, _)) in &subs {
        received_all(name, got, &acked).await;
    }
    for line in cluster.log_lines("RESUME_GAP") {
        eprintln!("{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_spread_over_a_fourth_node_and_a_leaving_node_hands_over_at_once() {
    let lease_ms = 4500;
    let Some(mut cluster) = Cluster::start("failover_rebalance", 3, 8, lease_ms).await else {
        return;
    };
    let d = cluster.add_node().await;
    cluster.balanced().await;
    let held = cluster.leases().await;
    assert!(held.values().all(|h| h.len() == 2), "8 over 4: {held:?}");
    let parts_d = held.get("n3").cloned().expect("n3 holds partitions");

    // A room of the fourth node; a member on it that reconnects to the
    // others when it goes, and a member on the first node.
    let list = format!("{},{},{}", cluster.url(d), cluster.url(0), cluster.url(1));
    let on_d = user(&list, "on_d", true).await;
    let on_a = user(&cluster.url(0), "on_a", false).await;
    let room = room_on(&on_d, "leaving", &[&on_a]).await;
    assert_eq!(cluster.owner_of(room).await.as_deref(), Some("n3"));
    retrying("send before", || on_d.send_message(room, "before")).await;

    let leaving = cluster.take(d);
    let started = Instant::now();
    leaving.proc.signal("TERM");
    let takeover = poll(Duration::from_secs(20), "partitions taken over", || async {
        let held = cluster.leases().await;
        let moved = parts_d
            .iter()
            .all(|p| held.iter().any(|(n, h)| n != "n3" && h.contains(p)));
        moved.then(|| started.elapsed())
    })
    .await;
    let exited =
        tokio::task::spawn_blocking(move || leaving.proc.wait_exit(Duration::from_secs(20)))
            .await
            .unwrap();
    assert!(exited.success(), "{exited}");
    eprintln!("graceful hand-over: partitions held elsewhere {takeover:?} after SIGTERM (lease {lease_ms} ms)");
    assert!(
        takeover < Duration::from_millis(lease_ms * 2 / 3),
        "SIGTERM hands over without waiting for the lease: {takeover:?}"
    );
    cluster.balanced().await;

    // The leaving node's client reconnected to another node and goes on.
    let ack = retrying("send after", || on_d.send_message(room, "after")).await;
    let ev = poll(Duration::from_secs(10), "on_a receives", || async {
        match on_a.next_event_timeout(Duration::from_millis(100)).await {
            Ok(Some(Event::Room(ev))) if ev.seq == ack.seq => Some(ev),
            _ => None,
        }
    })
    .await;
    assert!(matches!(ev.body, EventBody::Message { ref text, .. } if text == "after"));
}
