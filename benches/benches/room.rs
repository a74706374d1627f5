//! The room state machine: `Room::apply` for the commands of the hot path
//! (post) and of membership changes (join + leave), in rooms of 10,
//! 1,000 and 10,000 members. The post's text is cloned per iteration, as the session
//! hands the room a freshly decoded `String`.

#![forbid(unsafe_code)]

use confab_protocol::{RoomId, UserId, Visibility};
use confab_server::room::{Command, Rich, Room};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;
use std::time::Duration;

fn room_with(members: u64) -> Room {
    let (mut room, _) = Room::create(
        RoomId(1),
        "bench".into(),
        String::new(),
        Visibility::Public,
        UserId(1),
        "owner".into(),
        0,
    );
    for u in 2..=members {
        let join = Command::Join {
            user: UserId(u),
            username: format!("user-{u}"),
        };
        room.apply(join, 0).expect("join");
    }
    room
}

fn apply(c: &mut Criterion) {
    let mut g = c.benchmark_group("room");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    let text = "x".repeat(100);
    for members in [10u64, 1000, 10_000] {
        let mut room = room_with(members);
        g.bench_with_input(BenchmarkId::new("post", members), &members, |b, _| {
            b.iter(|| {
                let cmd = Command::Post {
                    user: UserId(2),
                    text: text.clone(),
                    rich: Rich::default(),
                };
                black_box(room.apply(cmd, 1).expect("post"))
            })
        });
        let mut room = room_with(members);
        let newcomer = UserId(members + 1);
        g.bench_with_input(BenchmarkId::new("join_leave", members), &members, |b, _| {
            b.iter(|| {
                let join = Command::Join {
                    user: newcomer,
                    username: "newcomer".into(),
                };
                black_box(room.apply(join, 1).expect("join"));
                black_box(
                    room.apply(Command::Leave { user: newcomer }, 1)
                        .expect("leave"),
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
