//! A steady message load for the fault tests: SDK clients each send
//! numbered messages (`c{client}-m{n}`) one after the other, recording
//! which were acknowledged (with their seq), which were refused (with the
//! error), and which got no answer. Then [`check_stored`] compares that
//! record with what the store holds.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_protocol::wire::Reader;
use confab_protocol::{EventBody, RoomId, Seq};
use confab_sdk::{Client, Error};
use confab_store::{Store, StoredEvent};

#[derive(Debug, Clone)]
pub struct Acked {
    pub client: usize,
    pub n: u64,
    pub seq: Seq,
    pub at: Instant,
}

#[derive(Debug, Clone)]
pub struct Refused {
    pub client: usize,
    pub n: u64,
    pub error: String,
    pub at: Instant,
}

/// What the load saw.
#[derive(Debug, Default)]
pub struct Outcome {
    pub acked: Vec<Acked>,
    pub refused: Vec<Refused>,
    /// Sent, but no answer (timeout, connection lost): may or may not be
    /// stored.
    pub unanswered: Vec<(usize, u64)>,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    /// Acknowledgements so far, over all clients.
    acks: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Outcome>>,
}

/// Starts one sending task per client, each pausing `pace` between sends.
/// A client stops on its own once its connection is gone.
pub fn start(clients: Vec<Client>, room: RoomId, pace: Duration) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicUsize::new(0));
    let tasks = clients
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let (stop, acks) = (stop.clone(), acks.clone());
            tokio::spawn(send_loop(i, c, room, pace, stop, acks))
        })
        .collect();
    Load { stop, acks, tasks }
}

async fn send_loop(
    client: usize,
    c: Client,
    room: RoomId,
    pace: Duration,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicUsize>,
) -> Outcome {
    let mut out = Outcome::default();
    let mut n = 0;
    // Bounded: a test never sends forever, even if nobody stops it.
    while !stop.load(Ordering::Relaxed) && n < 100_000 {
        n += 1;
        match c.send_message(room, &format!("c{client}-m{n}")).await {
            Ok(ack) => {
                acks.fetch_add(1, Ordering::Relaxed);
                out.acked.push(Acked {
                    client,
                    n,
                    seq: ack.seq,
                    at: Instant::now(),
                })
            }
            Err(Error::Server { code, message, .. }) => out.refused.push(Refused {
                client,
                n,
                error: format!("{code}: {message}"),
                at: Instant::now(),
            }),
            Err(Error::Timeout) => out.unanswered.push((client, n)),
            Err(_) => {
                out.unanswered.push((client, n));
                break;
            }
        }
        tokio::time::sleep(pace).await;
    }
    out
}

impl Load {
    /// Messages acknowledged so far.
    pub fn acks(&self) -> usize {
        self.acks.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` messages have been acknowledged (the load
    /// is steady), however slow the machine; panics after 60 s.
    pub async fn until_acked(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.acks.load(Ordering::Relaxed) < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} messages acknowledged in 60 s",
                self.acks.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops sending and collects what every client saw.
    pub async fn stop(self) -> Outcome {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Outcome::default();
        for t in self.tasks {
            let o = tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .expect("load clients stop within 60 s")
                .expect("load client task");
            all.acked.extend(o.acked);
            all.refused.extend(o.refused);
            all.unanswered.extend(o.unanswered);
        }
        all
    }
}

/// Every event of `room`, oldest first.
pub async fn stored_events(store: &dyn Store, room: RoomId) -> Vec<StoredEvent> {
    let mut all = Vec::new();
    let mut before = Seq(0);
    loop {
        let page = store.history(room, before, 200).await.expect("history");
        let Some(oldest) = page.last() else { break };
        before = oldest.seq;
        let done = oldest.seq.0 <= 1;
        all.extend(page);
        if done {
            break;
        }
    }
    all.reverse();
    all
}

/// The load's messages among `events`: `(client, n) -> seq`, asserting
/// that none is stored twice.
fn stored_messages(events: &[StoredEvent]) -> HashMap<(usize, u64), Seq> {
    let mut out = HashMap::new();
    for e in events {
        let Ok(EventBody::Message { text, .. }) =
            EventBody::decode_fields(e.kind, &mut Reader::new(&e.body))
        else {
            continue;
        };
        let Some((c, n)) = text.strip_prefix('c').and_then(|t| t.split_once("-m")) else {
            continue;
        };
        let key = (c.parse().expect("client"), n.parse().expect("n"));
        let first = out.insert(key, e.seq);
        assert!(
            first.is_none(),
            "message {text} is stored twice: seqs {first:?} and {}",
            e.seq
        );
    }
    out
}

/// The fault tests' check: every acknowledged message is stored exactly
/// once, under the seq its acknowledgement announced; each client's
/// messages are stored in the order it sent them; refused messages are
/// not stored. Returns how many acknowledged messages were checked.
pub fn check_stored(outcome: &Outcome, events: &[StoredEvent]) -> usize {
    // Seqs are unique and increasing (the store's key)
    for w in events.windows(2) {
        assert!(
            w[0].seq < w[1].seq,
            "stored seqs out of order: {} then {}",
            w[0].seq,
            w[1].seq
        );
    }
    let stored = stored_messages(events);
    for a in &outcome.acked {
        let seq = stored.get(&(a.client, a.n)).unwrap_or_else(|| {
            panic!(
                "acknowledged message c{}-m{} (seq {}) is not stored ({} of {} acknowledged messages stored)",
                a.client,
                a.n,
                a.seq,
                outcome.acked.iter().filter(|a| stored.contains_key(&(a.client, a.n))).count(),
                outcome.acked.len()
            )
        });
        assert_eq!(
            *seq, a.seq,
            "c{}-m{} stored under another seq than acknowledged",
            a.client, a.n
        );
    }
    for r in &outcome.refused {
        assert!(
            !stored.contains_key(&(r.client, r.n)),
            "refused message c{}-m{} ({}) was stored",
            r.client,
            r.n,
            r.error
        );
    }
    // Per client, in sending order
    let mut by_client: BTreeMap<usize, Vec<(Seq, u64)>> = BTreeMap::new();
    for ((c, n), seq) in &stored {
        by_client.entry(*c).or_default().push((*seq, *n));
    }
    for (c, mut v) in by_client {
        v.sort();
        assert!(
            v.windows(2).all(|w| w[0].1 < w[1].1),
            "client {c}'s messages are stored out of sending order: {v:?}"
        );
    }
    outcome.acked.len()
}
