//! `churn`: connection cycles on an open-loop schedule — connect, HELLO
//! with a token (authenticate), JOIN_ROOM, LEAVE_ROOM, disconnect. Latency
//! is a whole cycle, from its intended start to the LEAVE's OK.
//!
//! Cycles use a pool of users, each in at most one cycle at a time (a user
//! in two cycles at once would get ALREADY_MEMBER); a cycle whose user is
//! still busy counts as an error with code 0 (the server is too slow).

use std::cell::RefCell;
use std::rc::Rc;

use confab_protocol::{Request, RoomId};

use super::{wait_until, Ctx, OpenLoop, Timing};
use crate::clock::now_ns;
use crate::net;
use crate::setup::{self, User};
use crate::stats::{Recorder, StepReport};

pub struct Churn {
    users: Rc<Vec<User>>,
    busy: Rc<RefCell<Vec<bool>>>,
    room: RoomId,
    pub rec: Rc<RefCell<Recorder>>,
    conn_no: usize,
}

impl Churn {
    /// `pool` users (plus the room's owner) and one room.
    pub async fn prepare(ctx: &Rc<Ctx>, prefix: &str, pool: usize) -> anyhow::Result<Churn> {
        ctx.set_phase(format!("churn: creating {pool} users"));
        let pop = setup::populate(&ctx.connector, prefix, pool + 1, 1, 1, 0, |_| {}).await?;
        let mut users = pop.users;
        users.remove(0);
        let busy = vec![false; users.len()];
        Ok(Churn {
            users: Rc::new(users),
            busy: Rc::new(RefCell::new(busy)),
            room: pop.rooms[0],
            rec: ctx.recorder("churn"),
            conn_no: 1_000_000,
        })
    }

    pub async fn step(
        &mut self,
        ctx: &Rc<Ctx>,
        label: String,
        rate: f64,
        timing: Timing,
    ) -> anyhow::Result<StepReport> {
        let mut run = OpenLoop::start(ctx, "churn", &self.rec, rate, &timing, None)?;
        while let Some(due) = run.next(ctx).await {
            for k in due.range {
                let intended = run.intended(k);
                let slot = (k as usize) % self.users.len();
                if std::mem::replace(&mut self.busy.borrow_mut()[slot], true) {
                    if self.rec.borrow().in_window(intended) {
                        self.rec.borrow_mut().error(0);
                    }
                    continue;
                }
                self.conn_no += 1;
                let (ctx2, users, busy, rec, room, n) = (
                    ctx.clone(),
                    self.users.clone(),
                    self.busy.clone(),
                    self.rec.clone(),
                    self.room,
                    self.conn_no,
                );
                tokio::task::spawn_local(async move {
                    let result = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        cycle(&ctx2, &users[slot], room, n),
                    )
                    .await;
                    busy.borrow_mut()[slot] = false;
                    let mut rec = rec.borrow_mut();
                    match result {
                        Ok(Ok(())) => rec.received(intended, now_ns()),
                        Ok(Err(e)) if rec.in_window(intended) => {
                            rec.error(setup::server_code(&e).unwrap_or(0));
                        }
                        Err(_) if rec.in_window(intended) => rec.error(0),
                        _ => {}
                    }
                });
            }
        }
        let usage = run.finish(ctx).await;
        let rec = self.rec.clone();
        wait_until(timing.drain, || {
            let r = rec.borrow();
            r.received_in_window + r.errors.values().sum::<u64>() >= r.sent_in_window
        })
        .await;
        Ok(usage.report(ctx, &label, &self.rec, &timing, 1, rate).await)
    }
}

async fn cycle(ctx: &Ctx, user: &User, room: RoomId, n: usize) -> anyhow::Result<()> {
    let (mut rd, mut wr) = net::open(&ctx.connector, n, 4096, Some(user.token.clone())).await?;
    setup::join(&mut rd, &mut wr, room, 2).await?;
    wr.send(3, &Request::LeaveRoom { room }).await?;
    rd.reply(3).await?;
    Ok(())
}
