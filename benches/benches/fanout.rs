//! Fan-out: one encoded EVENT frame (100-byte message) pushed to 10 /
//! 1,000 / 10,000 members' outbound queues — what a shard does per
//! broadcast (a reference-counted clone, an atomic byte count and a channel
//! send per recipient). Queues are drained between iterations, outside the
//! measured time, as writer tasks would.

#![forbid(unsafe_code)]

use bytes::BytesMut;
use confab_protocol::{EventBody, RoomEvent, RoomId, Seq, UserId};
use confab_server::outbound::{ConnId, OutboundQueue};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::{Duration, Instant};

fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let mut buf = BytesMut::new();
    RoomEvent {
        room: RoomId(7),
        seq: Seq(123_456),
        at: 1_700_000_000_000,
        actor: UserId(42),
        actor_name: "lg-42".into(),
        body: EventBody::text("x".repeat(100)),
    }
    .encode_frame(&mut buf);
    let frame = buf.freeze();
    for members in [10usize, 1_000, 10_000] {
        // Effectively unbounded: the bench drains queues itself.
        let (conns, mut rxs): (Vec<_>, Vec<_>) = (0..members)
            .map(|i| OutboundQueue::detached(ConnId(i as u64), usize::MAX / 2))
            .unzip();
        g.throughput(Throughput::Elements(members as u64));
        g.bench_with_input(BenchmarkId::new("push", members), &members, |b, _| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    // Up to 64 broadcasts queued, then drained untimed.
                    let n = (iters - done).min(64);
                    let start = Instant::now();
                    for _ in 0..n {
                        for conn in &conns {
                            conn.push(frame.clone());
                        }
                    }
                    spent += start.elapsed();
                    for rx in rxs.iter_mut() {
                        while rx.try_recv().is_some() {}
                    }
                    done += n;
                }
                spent
            })
        });
    }
    g.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
