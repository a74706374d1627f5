//! How fast the load generator itself can receive: `blast` is a stand-in
//! server that floods connections with pre-encoded EVENT frames, and
//! `capacity` receives them through exactly the code path the scenarios
//! use (large reads, in-place parsing, stamp extraction, HDR recording).
//! Run them as two processes pinned to different cores to see how many
//! frames per second one load-generator core can count.

use std::io::Write;
use std::net::TcpListener;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use confab_protocol::{EventBody, RoomEvent, RoomId, Seq, UserId};

use crate::probe;
use crate::scenario::Ctx;
use crate::stats::stamp;

/// Floods every accepted connection with EVENT frames of `payload`-byte
/// messages until `seconds` pass. One thread per connection.
pub fn blast(listen: std::net::SocketAddr, payload: usize, seconds: u64) -> anyhow::Result<()> {
    anyhow::ensure!(listen.ip().is_loopback(), "blast listens on loopback only");
    let listener = TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    eprintln!("blast: listening on {}", listener.local_addr()?);
    let mut body = vec![b'x'; payload.max(crate::stats::STAMP_LEN)];
    stamp(&mut body, 1);
    let ev = RoomEvent {
        room: RoomId(42),
        seq: Seq(1_000_000),
        at: 1_700_000_000_000,
        actor: UserId(7),
        actor_name: "lg-7".into(),
        body: EventBody::text(String::from_utf8(body)?),
    };
    let mut chunk = BytesMut::new();
    while chunk.len() < 256 * 1024 {
        ev.encode_frame(&mut chunk);
    }
    let chunk = std::sync::Arc::new(chunk.freeze());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut threads = Vec::new();
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((mut s, _)) => {
                s.set_nonblocking(false)?;
                let chunk = chunk.clone();
                threads.push(std::thread::spawn(move || {
                    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
                    while Instant::now() < deadline {
                        if s.write_all(&chunk).is_err() {
                            break;
                        }
                    }
                }));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// Connects `connections` times to a `blast` and counts frames for
/// `seconds`. Returns (frames per second, CPU utilisation).
pub async fn capacity(
    ctx: &Rc<Ctx>,
    connections: usize,
    seconds: u64,
) -> anyhow::Result<(f64, f64)> {
    let rec = ctx.recorder("capacity");
    // Write sides stay open for the run: closing one ends the connection.
    let mut writers = Vec::with_capacity(connections);
    for i in 0..connections {
        let (rd, wr) = ctx.connector.connect(i, ctx.read_buf).await?;
        ctx.spawn_reader(crate::scenario::Receiver::Confab(rd), rec.clone());
        writers.push(wr);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (f0, c0, t0) = (
        rec.borrow().frames_total,
        probe::self_sample().cpu_seconds,
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (f1, c1, wall) = (
        rec.borrow().frames_total,
        probe::self_sample().cpu_seconds,
        t0.elapsed().as_secs_f64(),
    );
    ctx.stop.set(true);
    drop(writers);
    Ok(((f1 - f0) as f64 / wall, (c1 - c0) / wall))
}
