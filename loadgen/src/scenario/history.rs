//! `history`: paged reads. One room is filled with messages first; then
//! reader connections send HISTORY requests (a random `before`, `limit`
//! events per page) on an open-loop schedule. Latency runs from a
//! request's intended time to its HISTORY_PAGE.

use std::cell::RefCell;
use std::rc::Rc;

use confab_protocol::frame::kind;
use confab_protocol::{Request, RoomId, Seq};
use rand::Rng;

use super::{wait_until, Ctx, OpenLoop, Timing};
use crate::net::FrameWriter;
use crate::setup;
use crate::stats::{Recorder, StepReport};

pub struct History {
    readers: Vec<FrameWriter>,
    room: RoomId,
    last_seq: u64,
    page: u32,
    pub rec: Rc<RefCell<Recorder>>,
    next_k: u64,
}

impl History {
    /// `readers` members of one room holding `messages` messages.
    pub async fn prepare(
        ctx: &Rc<Ctx>,
        prefix: &str,
        readers: usize,
        messages: usize,
        page: u32,
    ) -> anyhow::Result<History> {
        let readers = readers.max(1);
        ctx.set_phase(format!("history: creating {readers} readers"));
        let pop = setup::populate(&ctx.connector, prefix, readers, 1, readers, 0, |_| {}).await?;
        let room = pop.rooms[0];
        ctx.set_phase(format!("history: posting {messages} messages"));
        let (mut rd, mut wr) = crate::net::open(
            &ctx.connector,
            2_000_000,
            1 << 16,
            Some(pop.users[0].token.clone()),
        )
        .await?;
        let mut last_seq = 0;
        let mut todo: Vec<usize> = (0..messages).collect();
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while !todo.is_empty() {
            anyhow::ensure!(
                std::time::Instant::now() < give_up,
                "filling the history room took over 120 s"
            );
            let chunk: Vec<usize> = todo.drain(..todo.len().min(256)).collect();
            let mut buf = bytes::BytesMut::new();
            for &i in &chunk {
                Request::SendMessage {
                    room,
                    body: format!("history filler {i} {}", "x".repeat(64)),
                    spans: vec![],
                    sticker: None,
                    attachments: Vec::new(),
                }
                .encode(10 + i as u32, &mut buf);
            }
            wr.write_all(&buf).await?;
            // Replies arrive in any order (refusals at once, acks after commit).
            let mut limited = false;
            let mut waiting: std::collections::HashSet<u32> =
                chunk.iter().map(|&i| 10 + i as u32).collect();
            while !waiting.is_empty() {
                let frame = rd.next_frame().await?;
                if !waiting.remove(&frame.req_id) {
                    continue;
                }
                match confab_protocol::ServerMsg::decode(&frame)? {
                    confab_protocol::ServerMsg::MessageAck { seq, .. } => {
                        last_seq = last_seq.max(seq.0)
                    }
                    confab_protocol::ServerMsg::Error { code, .. }
                        if code == confab_protocol::ErrorCode::RateLimited as u16 =>
                    {
                        limited = true;
                        todo.push((frame.req_id - 10) as usize);
                    }
                    other => anyhow::bail!("filling the history room: unexpected {other:?}"),
                }
            }
            if limited {
                // The server's rate limit: wait for its bucket to refill.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
        drop((rd, wr));
        let conns = ctx.open_all(&pop.users, readers, 1 << 16).await?;
        let rec = ctx.recorder("history");
        let mut writers = Vec::with_capacity(readers);
        for (mut rd, wr) in conns {
            let rec = rec.clone();
            let ctx2 = ctx.clone();
            tokio::task::spawn_local(async move {
                while let Ok(true) = rd
                    .read_frames(|f, now| {
                        let mut r = rec.borrow_mut();
                        match f.kind {
                            kind::HISTORY_PAGE => {
                                if let Some(s) = r.schedule {
                                    let k = f.req_id as u64;
                                    if k >= s.first {
                                        let t = s.intended(k);
                                        r.received(t, now);
                                    }
                                }
                            }
                            kind::ERROR | kind::CLOSE => r.failure(&f),
                            _ => {}
                        }
                    })
                    .await
                {}
                if !ctx2.stop.get() {
                    rec.borrow_mut().disconnects += 1;
                }
            });
            writers.push(wr);
        }
        Ok(History {
            readers: writers,
            room,
            last_seq: last_seq.max(1),
            page,
            rec,
            next_k: 1,
        })
    }

    pub async fn step(
        &mut self,
        ctx: &Ctx,
        label: String,
        rate: f64,
        timing: Timing,
    ) -> anyhow::Result<StepReport> {
        let first = self.next_k;
        let mut run = OpenLoop::start(ctx, "history", &self.rec, rate, &timing, Some(first))?;
        let mut rng = rand::thread_rng();
        let mut buf = bytes::BytesMut::new();
        while let Some(due) = run.next(ctx).await {
            for k in due.range {
                let before = rng.gen_range(1..=self.last_seq + 1);
                buf.clear();
                Request::History {
                    room: self.room,
                    before: Seq(before),
                    limit: self.page,
                }
                .encode((first + k) as u32, &mut buf);
                let reader = (k as usize) % self.readers.len();
                let _ = self.readers[reader].write_all(&buf).await;
            }
        }
        self.next_k = first + run.total();
        let usage = run.finish(ctx).await;
        let rec = self.rec.clone();
        wait_until(timing.drain, || {
            let r = rec.borrow();
            r.received_in_window + r.total_errors() >= r.sent_in_window
        })
        .await;
        Ok(usage.report(ctx, &label, &self.rec, &timing, 1, rate).await)
    }
}
