//! Phase 3, the owner's side of routing between nodes: commands other
//! nodes forward for the rooms this node serves.
//!
//! While [`Hosted`] says this node serves a partition, it subscribes to
//! the partition's command subject (`Subjects::commands`); it unsubscribes
//! when it stops serving it, so a command sent meanwhile finds no
//! responder and its sender answers `ROOM_MOVING`. Each command is
//! rebuilt as the `ShardCmd` the requesting session would have built and
//! goes through the router like a local one, so the shard applies every
//! rule exactly as for a local connection. Its answer goes to a stand-in
//! for the requesting connection: a detached [`OutboundQueue`] whose one
//! reply (the shard's refusal or list, or the batch writer's
//! acknowledgement after commit) is published back as it was encoded —
//! with the original request id, which the requester sent along. The
//! stand-in never subscribes to anything, so it receives nothing else.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use confab_protocol::ErrorCode;
use futures_util::StreamExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::routing::{next_proxy_id, Subjects, FORWARD_TIMEOUT};
use super::wire::{Answer, Forwarded, What};
use super::Hosted;
use crate::outbound::{Outbound, OutboundQueue, OutboundRx};
use crate::shard::{ReplyTo, Router, ShardCmd};

/// The most a stand-in connection queues: one reply.
const PROXY_QUEUE_BYTES: usize = 16 << 20;

/// Serves forwarded commands for the partitions `hosted` serves until
/// `shutdown`.
pub async fn run(
    client: async_nats::Client,
    subjects: Subjects,
    hosted: Arc<Hosted>,
    router: Router,
    shutdown: CancellationToken,
) {
    // Per partition served, what stops its subscription's task.
    let mut serving: HashMap<u32, (CancellationToken, JoinHandle<()>)> = HashMap::new();
    loop {
        let changed = hosted.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let now: Vec<u32> = hosted.serving();
        serving.retain(|p, (stop, _)| {
            let keep = now.contains(p);
            if !keep {
                stop.cancel();
            }
            keep
        });
        for p in now {
            if serving.contains_key(&p) {
                continue;
            }
            match client.subscribe(subjects.commands(p)).await {
                Ok(sub) => {
                    let stop = CancellationToken::new();
                    let taking = take(
                        sub,
                        client.clone(),
                        hosted.clone(),
                        router.clone(),
                        stop.clone(),
                    );
                    serving.insert(p, (stop, tokio::spawn(taking)));
                }
                Err(e) => {
                    tracing::warn!(partition = p, error = %e, "subscribing to a partition's commands failed")
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = changed => {}
        }
    }
    // Unsubscribed, and the server has read it, before this returns: a node
    // that stopped leaves no subscriber behind to take commands it would
    // never answer (the requester gets "no responders" at once).
    for (stop, _) in serving.values() {
        stop.cancel();
    }
    for (_, task) in serving.into_values() {
        let _ = task.await;
    }
    super::routing::round_trip(&client, &subjects, super::routing::SYNC_PATIENCE).await;
}

/// Takes the commands of one partition's subscription: each goes to its
/// shard here, in the order they arrived (one connection's requests to
/// one room keep their order), and its answer is awaited on a task of its
/// own (an answer waits for a commit).
async fn take(
    mut sub: async_nats::Subscriber,
    client: async_nats::Client,
    hosted: Arc<Hosted>,
    router: Router,
    stop: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.cancelled() => {
                let _ = sub.unsubscribe().await;
                return;
            }
            next = sub.next() => next,
        };
        let Some(msg) = next else { return };
        let Some(reply) = msg.reply else { continue };
        crate::metrics::cluster_nats_bytes("received", msg.payload.len());
        let started = Instant::now();
        let wait = match Forwarded::decode(&msg.payload) {
            Err(e) => {
                tracing::warn!(error = %e, "a forwarded command this node cannot read");
                Wait::Refused
            }
            Ok(f) if !hosted.serves(f.room) => Wait::Refused,
            Ok(f) => {
                let room = f.room;
                let (cmd, wait) = rebuild(f);
                match router.send(room, cmd).await {
                    Ok(()) => wait,
                    // Shutting down: nothing was applied.
                    Err(_) => Wait::Refused,
                }
            }
        };
        let client = client.clone();
        tokio::spawn(async move {
            // None: no answer in time; the requester times out too.
            let Ok(Some(answer)) = tokio::time::timeout(FORWARD_TIMEOUT, wait.answer()).await
            else {
                return;
            };
            let payload = answer.encode();
            crate::metrics::cluster_nats_bytes("published", payload.len());
            crate::metrics::cluster_served(started);
            if let Err(e) = client.publish(reply, payload).await {
                tracing::debug!(error = %e, "answering a forwarded command failed");
            }
        });
    }
}

/// The `ShardCmd` a forwarded command stands for, answering a stand-in
/// connection (or a oneshot), and how its answer comes back.
fn rebuild(f: Forwarded) -> (ShardCmd, Wait) {
    let room = f.room;
    let stand_in = |req_id| {
        let (conn, rx) = OutboundQueue::detached(next_proxy_id(), PROXY_QUEUE_BYTES);
        (ReplyTo { conn, req_id }, rx)
    };
    match f.what {
        What::Apply { req_id, cmd } => {
            let (reply, rx) = stand_in(req_id);
            (ShardCmd::Apply { room, cmd, reply }, Wait::Reply(rx, None))
        }
        What::ChangeMessage { req_id, cmd } => {
            let (reply, rx) = stand_in(req_id);
            let (need_store, asked) = oneshot::channel();
            let cmd = ShardCmd::ChangeMessage {
                room,
                cmd,
                reply,
                need_store,
            };
            (cmd, Wait::Reply(rx, Some(asked)))
        }
        What::OpenDirect {
            req_id,
            opener,
            other,
        } => {
            let (reply, rx) = stand_in(req_id);
            let cmd = ShardCmd::OpenDirect {
                room,
                opener,
                other,
                reply,
            };
            (cmd, Wait::Reply(rx, None))
        }
        What::Members { req_id, user } => {
            let (reply, rx) = stand_in(req_id);
            (
                ShardCmd::Members { room, user, reply },
                Wait::Reply(rx, None),
            )
        }
        What::Typing {
            req_id,
            user,
            start,
        } => {
            let (reply, rx) = stand_in(req_id);
            let cmd = ShardCmd::Typing {
                room,
                user,
                start,
                reply,
            };
            (cmd, Wait::Reply(rx, None))
        }
        What::Roster {
            req_id,
            user,
            which,
        } => {
            let (reply, rx) = stand_in(req_id);
            let cmd = ShardCmd::Roster {
                room,
                user,
                which,
                reply,
            };
            (cmd, Wait::Reply(rx, None))
        }
        What::Tail {
            user,
            before,
            limit,
        } => {
            let (reply, rx) = oneshot::channel();
            let cmd = ShardCmd::Tail {
                room,
                user,
                before,
                limit: limit as usize,
                reply,
            };
            (cmd, Wait::Tail(rx))
        }
        What::CheckAdmin { user } => {
            let (reply, rx) = oneshot::channel();
            (
                ShardCmd::CheckAdmin { room, user, reply },
                Wait::Checked(rx),
            )
        }
        What::CheckMember { user } => {
            let (reply, rx) = oneshot::channel();
            (
                ShardCmd::CheckMember { room, user, reply },
                Wait::Checked(rx),
            )
        }
        What::CheckReadMarker { user, seq } => {
            let (reply, rx) = oneshot::channel();
            let cmd = ShardCmd::CheckReadMarker {
                room,
                user,
                seq,
                reply,
            };
            (cmd, Wait::Checked(rx))
        }
    }
}

/// How the answer of a rebuilt command comes back on the owner.
enum Wait {
    /// Not applied: answered `ROOM_MOVING`.
    Refused,
    Reply(OutboundRx, Option<oneshot::Receiver<u64>>),
    Checked(oneshot::Receiver<Result<(), ErrorCode>>),
    Tail(oneshot::Receiver<Result<crate::shard::TailSlice, ErrorCode>>),
}

impl Wait {
    async fn answer(self) -> Option<Answer> {
        match self {
            Wait::Refused => Some(Answer::Refused(ErrorCode::RoomMoving)),
            Wait::Reply(mut rx, None) => reply(rx.recv().await?),
            Wait::Reply(mut rx, Some(mut asked)) => tokio::select! {
                item = rx.recv() => reply(item?),
                Ok(generation) = &mut asked => Some(Answer::NeedStore(generation)),
            },
            Wait::Checked(rx) => Some(Answer::Checked(rx.await.ok()?)),
            Wait::Tail(rx) => Some(Answer::Tail(rx.await.ok()?)),
        }
    }
}

fn reply(item: Outbound) -> Option<Answer> {
    match item {
        Outbound::Reply { error, frame, .. } => Some(Answer::Reply { error, frame }),
        other => {
            tracing::error!(
                ?other,
                "a stand-in connection got something else than a reply"
            );
            None
        }
    }
}
