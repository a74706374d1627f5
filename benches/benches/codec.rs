//! Codec: decode and encode one frame of every type (the canonical vectors).

#![forbid(unsafe_code)]

use bytes::BytesMut;
use confab_benches::vectors_per_type;
use confab_protocol::frame::split_frame;
use confab_protocol::{Request, ServerMsg};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    for v in vectors_per_type() {
        let frame = split_frame(&mut BytesMut::from(&v.bytes[..]), u32::MAX)
            .expect("valid frame")
            .expect("whole frame");
        g.throughput(Throughput::Bytes(v.bytes.len() as u64));
        let mut buf = BytesMut::with_capacity(4096);
        if v.request {
            let msg = Request::decode(&frame).expect("decodes");
            g.bench_function(format!("decode/{}", v.name), |b| {
                b.iter(|| Request::decode(black_box(&frame)))
            });
            g.bench_function(format!("encode/{}", v.name), |b| {
                b.iter(|| {
                    buf.clear();
                    black_box(&msg).encode(frame.req_id, &mut buf);
                })
            });
        } else {
            let msg = ServerMsg::decode(&frame).expect("decodes");
            g.bench_function(format!("decode/{}", v.name), |b| {
                b.iter(|| ServerMsg::decode(black_box(&frame)))
            });
            g.bench_function(format!("encode/{}", v.name), |b| {
                b.iter(|| {
                    buf.clear();
                    black_box(&msg).encode(frame.req_id, &mut buf);
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
