//! The message rate limit of HTTP callers.
//!
//! A connection has its own bucket (`rate_limit_per_sec`,
//! `rate_limit_burst`); an HTTP request has no connection, so the HTTP door
//! keeps one allowance per **user**, with the same rate and burst, shared
//! by every HTTP request of that user whatever token it carries (logging in
//! again does not buy a fresh one). The check itself runs in the session's
//! SEND_MESSAGE dispatch, where a connection's runs, through
//! [`crate::limit::MessageLimit`].

use std::sync::Arc;

use confab_protocol::UserId;

use crate::limit::{KeyedLimit, MessageLimit};

/// The HTTP door's per-user message limit; `None` when the rate is 0 (the
/// limit is off, as for connections).
pub fn per_user(rate: u32, burst: u32, clock: &crate::clock::Clock) -> Option<MessageLimit> {
    let limit = Arc::new(KeyedLimit::<UserId>::new(rate, burst, clock)?);
    Some(Arc::new(move |user| limit.try_take(&user)))
}
