//! The writer task of a connection: drains its outbound queue into the
//! transport, coalescing whatever is queued into one write.

use std::sync::Arc;
use std::time::Duration;

use confab_protocol::ServerMsg;

use super::{Outbound, OutboundQueue, OutboundRx};
use crate::net::frames::FrameSink;

/// Most frames coalesced into one write.
const MAX_BATCH_FRAMES: usize = 512;
/// Most bytes coalesced into one write.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Drains a connection's outbound queue into its transport, coalescing
/// whatever is queued into one write. Ends after writing CLOSE, on a write
/// error, or at once when the connection is aborted (slow consumer).
pub async fn run<K: FrameSink>(mut sink: K, mut out: OutboundRx, conn: Arc<OutboundQueue>) {
    let mut batch: Vec<Outbound> = Vec::new();
    let mut aborted_mid_write = false;
    let abort = conn.abort_token().clone();
    loop {
        let first = tokio::select! {
            biased;
            _ = abort.cancelled() => break,
            f = out.recv() => match f { Some(f) => f, None => break },
        };
        // CLOSE bypasses the byte bound, so it is not counted against it.
        let counted = |item: &Outbound| match item {
            Outbound::Close { .. } => 0,
            other => other.frame().len(),
        };
        let mut closing = matches!(first, Outbound::Close { .. });
        let mut bytes = counted(&first);
        batch.push(first);
        while !closing && batch.len() < MAX_BATCH_FRAMES && bytes < MAX_BATCH_BYTES {
            match out.try_recv() {
                Some(item) => {
                    closing = matches!(item, Outbound::Close { .. });
                    bytes += counted(&item);
                    batch.push(item);
                }
                None => break,
            }
        }
        let result = tokio::select! {
            biased;
            _ = abort.cancelled() => { aborted_mid_write = true; break }
            r = sink.write_frames(&batch) => r,
        };
        conn.written(bytes);
        crate::metrics::frames_written(&conn.stats, &batch, bytes + conn.queued_bytes());
        batch.clear();
        if batch.capacity() > 64 {
            batch = Vec::new();
        }
        if result.is_err() || closing {
            break;
        }
    }
    if abort.is_cancelled() && !aborted_mid_write {
        if let Some(code) = conn.close_reason() {
            let close = ServerMsg::Close {
                code: code as u16,
                message: code.default_message().into(),
            };
            let _ = tokio::time::timeout(
                Duration::from_millis(500),
                sink.write_frames(&[Outbound::encode(0, &close)]),
            )
            .await;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    conn.finished_token().cancel();
}
