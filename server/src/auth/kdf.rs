//! Password hashing with a fixed budget: at most `workers` argon2id
//! computations run at once, each in a memory arena that is reused, never
//! grown per request; at most `queue` more wait (for up to `patience`),
//! and anything beyond is refused at once with a retry-after hint.
//!
//! An argon2id hash at the default cost needs 19 MiB. Without a bound, a
//! burst of logins for unknown users (which verify against a dummy hash,
//! so that timing reveals no usernames) made the server allocate 19 MiB
//! per request; with it, the memory hashing can use is
//! `workers × memory_kib` however many logins arrive.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

/// argon2id cost parameters for new hashes.
#[derive(Debug, Clone, Copy)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
}

/// How many hashes may run and wait.
#[derive(Debug, Clone, Copy)]
pub struct KdfLimits {
    /// Computations at once (each holds one arena of `memory_kib`).
    pub workers: usize,
    /// Requests that may wait for a worker; more are refused at once.
    pub queue: usize,
    /// How long a request waits for a worker before it is refused.
    pub patience: Duration,
}

/// Why a hash was not computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KdfError {
    /// Every worker is busy and the queue is full (or the wait ran out):
    /// try again after about this long.
    Busy { retry_after: Duration },
    /// The parameters or the stored hash are unusable (a bug or corrupt
    /// data, not the caller's fault).
    Failed,
}

/// The server's password hasher. Cheap to share (`Arc`).
pub struct Kdf {
    params: Params,
    limits: KdfLimits,
    slots: Semaphore,
    /// Requests admitted (running or waiting).
    admitted: AtomicUsize,
    /// Arenas not in use; at most `workers` exist.
    arenas: Mutex<Vec<Vec<Block>>>,
    /// Recent time per hash, in microseconds (for retry-after hints).
    recent_us: AtomicU64,
}

/// The longest retry-after hint.
const MAX_HINT: Duration = Duration::from_secs(30);

impl Kdf {
    pub fn new(params: KdfParams, limits: KdfLimits) -> Result<Arc<Kdf>, argon2::Error> {
        let params = Params::new(params.memory_kib, params.iterations, 1, None)?;
        let limits = KdfLimits {
            workers: limits.workers.max(1),
            ..limits
        };
        Ok(Arc::new(Kdf {
            params,
            limits,
            slots: Semaphore::new(limits.workers),
            admitted: AtomicUsize::new(0),
            arenas: Mutex::new(Vec::new()),
            recent_us: AtomicU64::new(0),
        }))
    }

    /// The most memory hashing can hold, in bytes, at the configured cost.
    pub fn memory_bound(&self) -> usize {
        self.limits.workers * self.params.block_count() * std::mem::size_of::<Block>()
    }

    /// Hashes `password` into a PHC string with a fresh salt.
    pub async fn hash(self: &Arc<Self>, password: String) -> Result<String, KdfError> {
        let params = self.params.clone();
        self.run(move |arena| hash_into(&password, params, arena))
            .await?
    }

    /// Checks `password` against a stored PHC string (whose own parameters
    /// apply). `Ok(false)`: wrong password or an unreadable hash.
    pub async fn verify(
        self: &Arc<Self>,
        password: String,
        phc: Arc<str>,
    ) -> Result<bool, KdfError> {
        self.run(move |arena| verify_with(&password, &phc, arena))
            .await
    }

    /// Runs `work` on the blocking pool with an arena, within the budget.
    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, KdfError> {
        let admitted = self.admitted.fetch_add(1, Ordering::AcqRel);
        let _admission = Admission(&self.admitted);
        if admitted >= self.limits.workers + self.limits.queue {
            crate::metrics::kdf_refused();
            return Err(self.busy(admitted));
        }
        let permit = match tokio::time::timeout(self.limits.patience, self.slots.acquire()).await {
            Ok(Ok(permit)) => permit,
            _ => {
                crate::metrics::kdf_refused();
                return Err(self.busy(admitted));
            }
        };
        let me = self.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut arena = me.take_arena();
            let started = Instant::now();
            let out = work(&mut arena);
            me.note(started.elapsed());
            me.give_arena(arena);
            out
        })
        .await;
        drop(permit);
        done.map_err(|_| KdfError::Failed)
    }

    fn take_arena(&self) -> Vec<Block> {
        let pooled = self.arenas.lock().unwrap_or_else(|e| e.into_inner()).pop();
        pooled.unwrap_or_default()
    }

    fn give_arena(&self, arena: Vec<Block>) {
        let mut pool = self.arenas.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < self.limits.workers {
            pool.push(arena);
        }
    }

    fn note(&self, took: Duration) {
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        let old = self.recent_us.load(Ordering::Relaxed);
        let new = if old == 0 { us } else { (old * 7 + us) / 8 };
        self.recent_us.store(new, Ordering::Relaxed);
    }

    /// A refusal, with how long the work ahead should take to clear.
    fn busy(&self, ahead: usize) -> KdfError {
        let per_hash = Duration::from_micros(self.recent_us.load(Ordering::Relaxed));
        let rounds = (ahead / self.limits.workers + 1) as u32;
        let hint = (per_hash * rounds).clamp(Duration::from_secs(1), MAX_HINT);
        KdfError::Busy { retry_after: hint }
    }

    /// Arenas currently pooled (tests).
    #[cfg(test)]
    fn pooled(&self) -> usize {
        self.arenas.lock().unwrap().len()
    }
}

/// Counts a request out when it is answered, however it ends.
struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Grows `arena` to `blocks` (it keeps its size for the next hash).
fn fit(arena: &mut Vec<Block>, blocks: usize) -> &mut [Block] {
    if arena.len() < blocks {
        arena.resize(blocks, Block::default());
    }
    &mut arena[..blocks]
}

fn hash_into(password: &str, params: Params, arena: &mut Vec<Block>) -> Result<String, KdfError> {
    let salt = SaltString::generate(&mut OsRng);
    let mut raw_salt = [0u8; Salt::MAX_LENGTH];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut raw_salt)
        .map_err(|_| KdfError::Failed)?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let blocks = params.block_count();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    argon
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt_bytes,
            &mut out,
            fit(arena, blocks),
        )
        .map_err(|_| KdfError::Failed)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: (&params).try_into().map_err(|_| KdfError::Failed)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|_| KdfError::Failed)?),
    };
    Ok(phc.to_string())
}

fn verify_with(password: &str, phc: &str, arena: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut raw_salt = [0u8; Salt::MAX_LENGTH];
    let Ok(salt_bytes) = salt.decode_b64(&mut raw_salt) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let blocks = params.block_count();
    let argon = Argon2::new(algorithm, version, params);
    if argon
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt_bytes,
            &mut out,
            fit(arena, blocks),
        )
        .is_err()
    {
        return false;
    }
    // `Output`'s equality is constant-time.
    Output::new(&out).is_ok_and(|got| got == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    const CHEAP: KdfParams = KdfParams {
        memory_kib: 64,
        iterations: 1,
    };

    fn kdf(workers: usize, queue: usize) -> Arc<Kdf> {
        Kdf::new(
            CHEAP,
            KdfLimits {
                workers,
                queue,
                patience: Duration::from_secs(5),
            },
        )
        .unwrap()
    }

    #[tokio::test]
    async fn hashes_verify_only_the_right_password_and_are_salted() {
        let k = kdf(2, 4);
        let a = k.hash("correct horse".into()).await.unwrap();
        let b = k.hash("correct horse".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{a}");
        assert_ne!(a, b, "salted");
        assert_eq!(
            k.verify("correct horse".into(), a.clone().into()).await,
            Ok(true)
        );
        assert_eq!(k.verify("wrong horse".into(), a.into()).await, Ok(false));
        assert_eq!(
            k.verify("correct horse".into(), "not a phc string".into())
                .await,
            Ok(false)
        );
    }

    #[tokio::test]
    async fn hashes_agree_with_the_argon2_crate_both_ways() {
        let k = kdf(1, 1);
        // Ours verifies with the crate's own verifier …
        let ours = k.hash("hunter2hunter2".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"hunter2hunter2", &parsed)
            .is_ok());
        // … and a hash the crate made (other costs, as older accounts may
        // have) verifies with ours, in an arena grown to fit it.
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(256, 2, 1, None).unwrap(),
        )
        .hash_password(b"older account", &salt)
        .unwrap()
        .to_string();
        assert_eq!(
            k.verify("older account".into(), theirs.clone().into())
                .await,
            Ok(true)
        );
        assert_eq!(
            k.verify("older acco".into(), theirs.into()).await,
            Ok(false)
        );
    }

    #[tokio::test]
    async fn arenas_are_reused_and_never_more_than_the_workers() {
        let k = kdf(2, 64);
        let jobs: Vec<_> = (0..16)
            .map(|i| {
                let k = k.clone();
                tokio::spawn(async move { k.hash(format!("password {i}")).await })
            })
            .collect();
        for j in jobs {
            j.await.unwrap().unwrap();
        }
        assert!(k.pooled() <= 2, "{} arenas for 2 workers", k.pooled());
        assert_eq!(k.memory_bound(), 2 * 64 * 1024);
    }

    #[tokio::test]
    async fn beyond_the_workers_and_the_queue_requests_are_refused_at_once() {
        // One worker, no waiting places. The worker's slot is held outside
        // the count, so the first request takes the one place and waits;
        // the second is refused without waiting.
        let k = kdf(1, 0);
        let held = k.slots.acquire().await.unwrap();
        let waiting = {
            let k = k.clone();
            tokio::spawn(async move { k.hash("password one".into()).await })
        };
        while k.admitted.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        match k.hash("password two".into()).await {
            Err(KdfError::Busy { retry_after }) => assert!(retry_after >= Duration::from_secs(1)),
            other => panic!("expected Busy, got {other:?}"),
        }
        drop(held);
        assert!(waiting.await.unwrap().is_ok(), "the queued one runs");
        assert_eq!(
            k.admitted.load(Ordering::Acquire),
            0,
            "everyone counted out"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_waits_at_most_its_patience() {
        let k = Kdf::new(
            CHEAP,
            KdfLimits {
                workers: 1,
                queue: 8,
                patience: Duration::from_millis(500),
            },
        )
        .unwrap();
        let _held = k.slots.acquire().await.unwrap();
        let started = tokio::time::Instant::now();
        assert!(matches!(
            k.verify("password".into(), "x".into()).await,
            Err(KdfError::Busy { .. })
        ));
        assert_eq!(started.elapsed(), Duration::from_millis(500));
    }
}
