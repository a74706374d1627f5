//! One request without a connection: the door for request/response
//! adapters such as the HTTP API. The request runs through the same
//! dispatch as a connection's, so every rule, limit and error code is the
//! session's own.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use confab_protocol::{ErrorCode, Request, ServerMsg};

use super::{Auth, Session};
use crate::auth;
use crate::outbound::{ConnId, Outbound, OutboundQueue};
use crate::state::ServerState;

/// The request id a one-shot request runs under.
const REQ_ID: u32 = 1;

/// How long a one-shot request may take before it is answered INTERNAL.
const PATIENCE: Duration = Duration::from_secs(30);

/// Runs one request through the same dispatch as a protocol connection and
/// returns its reply. `peer` is where the request came from (login and
/// registration limits count by address). `token` authenticates like
/// HELLO's token; REGISTER and LOGIN work without one. The reply is the
/// frame a connection would get (an `Error` for refusals). The per-user
/// limits are the ones the user's connections draw on too.
pub async fn call(
    state: Arc<ServerState>,
    peer: std::net::IpAddr,
    token: Option<&str>,
    req: Request,
) -> ServerMsg {
    let id = ConnId(state.next_conn_id.fetch_add(1, Ordering::Relaxed));
    let (conn, mut out) = OutboundQueue::detached(id, usize::MAX / 2);
    let mut session = Session {
        state: state.clone(),
        conn: conn.clone(),
        auth: None,
        one_shot: true,
        peer,
    };
    if let Some(token) = token {
        match authenticate(&state, token).await {
            Ok(auth) => session.auth = Some(auth),
            Err(code) => return error_msg(code),
        }
    }
    match &req {
        Request::Hello(_) if session.auth.is_none() => {
            return error_msg(ErrorCode::HandshakeRequired)
        }
        Request::Logout if session.auth.is_none() => return error_msg(ErrorCode::NotAuthenticated),
        _ => {}
    }
    session.dispatch(REQ_ID, req).await;
    // A one-shot session is never attached to shards, so the only items it
    // receives are replies to this request (and, for LOGOUT, a CLOSE).
    loop {
        match tokio::time::timeout(PATIENCE, out.recv()).await {
            Ok(Some(Outbound::Reply { req_id, frame, .. })) if req_id == REQ_ID => {
                return decode_reply(&frame);
            }
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return error_msg(ErrorCode::Internal),
        }
    }
    // Nothing to clean up: a one-shot session never attaches (even when
    // REGISTER/LOGIN authenticates it), so it never shows as online.
}

/// The session a bearer token names: `INVALID_TOKEN` when it names none
/// (or it expired), `STORAGE_UNAVAILABLE` when the store cannot say.
pub async fn authenticate(state: &ServerState, token: &str) -> Result<Auth, ErrorCode> {
    let hash = auth::token_hash(token);
    let lookup = state.store.session_user(&hash, state.clock.now_ms());
    match crate::metrics::query("session_user", lookup).await {
        Ok(Some(user)) => Ok(Auth {
            user: user.id,
            username: user.username,
            token_hash: hash,
        }),
        Ok(None) => Err(ErrorCode::InvalidToken),
        Err(e) => {
            tracing::warn!(error = %e, "session lookup failed");
            Err(ErrorCode::StorageUnavailable)
        }
    }
}

/// Whether `user` is a member of the live `room`, asked of the room's
/// shard (for the HTTP door's file routes, which are no protocol request).
pub async fn check_member(
    state: &ServerState,
    room: confab_protocol::RoomId,
    user: confab_protocol::UserId,
) -> Result<(), ErrorCode> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let check = crate::shard::ShardCmd::CheckMember {
        room,
        user,
        reply: tx,
    };
    state.router.send(room, check).await?;
    rx.await.unwrap_or(Err(ErrorCode::ShuttingDown))
}

/// Decodes a reply frame this server encoded.
fn decode_reply(frame: &bytes::Bytes) -> ServerMsg {
    let mut buf = bytes::BytesMut::from(&frame[..]);
    match confab_protocol::frame::split_frame(&mut buf, u32::MAX) {
        Ok(Some(raw)) => ServerMsg::decode(&raw).unwrap_or_else(|_| error_msg(ErrorCode::Internal)),
        _ => error_msg(ErrorCode::Internal),
    }
}

fn error_msg(code: ErrorCode) -> ServerMsg {
    ServerMsg::error(code, code.default_message())
}
