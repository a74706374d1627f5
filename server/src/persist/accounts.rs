//! Group commit for accounts: registrations and logins.
//!
//! A registration writes an account and its first session; a login writes
//! a session. Each used to be its own autocommit — with SQLite's
//! `synchronous = FULL`, one fsync per statement, two per registration — so
//! a storm of new accounts ran at the disk's fsync rate. Here they gather
//! like messages do: one task takes every write waiting, commits them in
//! one transaction ([`AccountStore::write_accounts`]) and answers each
//! waiter; writes that arrive meanwhile form the next batch. A session
//! still answers SESSION only after its write is durable.
//!
//! Unlike room writes, account writes do not go to the spool while the
//! database is down: the requester gets `STORAGE_UNAVAILABLE` and may
//! retry (an account is not an event that others have already seen).

use std::sync::Arc;

use confab_store::{AccountOutcome, AccountWrite, Store, StoreError, StoreResult};
use tokio::sync::{mpsc, oneshot};

/// Most writes committed together.
const MAX_BATCH: usize = 512;

struct Pending {
    write: AccountWrite,
    reply: oneshot::Sender<StoreResult<AccountOutcome>>,
}

/// The handle sessions write accounts through (cheap to clone).
#[derive(Clone)]
pub struct AccountWriter {
    tx: mpsc::UnboundedSender<Pending>,
}

impl AccountWriter {
    /// Starts the writer's task on the current runtime; it ends when every
    /// handle is dropped.
    pub fn spawn(store: Arc<dyn Store>) -> AccountWriter {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, rx));
        AccountWriter { tx }
    }

    /// Commits `write` with whatever else is waiting; resolves once it is
    /// durable (or failed).
    pub async fn write(&self, write: AccountWrite) -> StoreResult<AccountOutcome> {
        let (reply, outcome) = oneshot::channel();
        self.tx
            .send(Pending { write, reply })
            .map_err(|_| StoreError::database("the account writer has stopped"))?;
        outcome
            .await
            .map_err(|_| StoreError::database("the account writer has stopped"))?
    }
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let mut batch: Vec<Pending> = Vec::new();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (writes, replies): (Vec<_>, Vec<_>) =
            batch.drain(..).map(|p| (p.write, p.reply)).unzip();
        crate::metrics::account_batch(writes.len());
        let committed =
            crate::metrics::query("write_accounts", store.write_accounts(&writes)).await;
        match committed {
            Ok(outcomes) if outcomes.len() == replies.len() => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Ok(outcomes) => {
                tracing::error!(
                    writes = replies.len(),
                    outcomes = outcomes.len(),
                    "the store answered a different number of account writes"
                );
                for reply in replies {
                    let _ = reply.send(Err(StoreError::database("account write outcome missing")));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(copy_of(&e)));
                }
            }
        }
    }
}

/// The same failure for every waiter of a failed batch (the underlying
/// error is logged by each waiter's `storage_error` through its message).
fn copy_of(e: &StoreError) -> StoreError {
    match e {
        StoreError::Conflict(what) => StoreError::Conflict(what),
        StoreError::Database { .. } => StoreError::database(e.to_string()),
        StoreError::Unavailable { .. } => StoreError::Unavailable {
            message: e.to_string(),
            source: None,
        },
        StoreError::Fenced { message } => StoreError::Fenced {
            message: message.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_store::sqlite::SqliteStore;

    fn register(name: &str, token: u8) -> AccountWrite {
        AccountWrite::Register {
            username: name.to_owned(),
            password_hash: "x".to_owned(),
            token_hash: [token; 32],
            now: 1,
            expires_at: 1_000,
        }
    }

    #[tokio::test]
    async fn concurrent_writes_each_get_their_own_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("a.db"))
                .await
                .expect("open"),
        );
        let writer = AccountWriter::spawn(store.clone());
        // 200 registrations at once, every name twice: each name is won
        // by exactly one of its two writes, and the winner's token is its
        // session.
        let writes = (0..200u8).map(|i| {
            let w = writer.clone();
            let name = format!("user{}", i / 2);
            tokio::spawn(async move { (i, name.clone(), w.write(register(&name, i)).await) })
        });
        let mut winners = std::collections::HashMap::new();
        for task in writes {
            let (i, name, outcome) = task.await.unwrap();
            match outcome.expect("write") {
                AccountOutcome::Registered(id) => {
                    assert!(
                        winners.insert(name.clone(), (id, i)).is_none(),
                        "{name} won twice"
                    )
                }
                AccountOutcome::UsernameTaken => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(winners.len(), 100);
        for (name, (id, token)) in winners {
            let who = store.session_user(&[token; 32], 2).await.unwrap().unwrap();
            assert_eq!((who.id, who.username), (id, name));
        }
    }
}
