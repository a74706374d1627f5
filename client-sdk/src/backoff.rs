//! Reconnect policy and its backoff schedule.

use std::time::Duration;

/// Whether and how fast to re-establish a dropped connection.
///
/// Delays grow exponentially from `initial_backoff` up to `max_backoff`, with
/// "equal jitter": attempt `n` waits a random time in `[d/2, d]` where
/// `d = min(max_backoff, initial_backoff * 2^n)`, so that many clients
/// dropped at once do not reconnect in lockstep.
///
/// Build it with [`ReconnectPolicy::exponential`] (or
/// [`ReconnectPolicy::disabled`]) and [`ReconnectPolicy::with_max_attempts`];
/// it is non-exhaustive, so later versions may add settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconnectPolicy {
    /// Off by default: a dropped connection ends the client.
    pub enabled: bool,
    /// Upper bound of the first delay.
    pub initial_backoff: Duration,
    /// Upper bound of every delay.
    pub max_backoff: Duration,
    /// Give up after this many failed attempts in a row (`None`: never).
    pub max_attempts: Option<u32>,
}

impl ReconnectPolicy {
    /// No reconnection (the default).
    pub fn disabled() -> Self {
        ReconnectPolicy {
            enabled: false,
            ..Self::exponential(Duration::from_millis(250), Duration::from_secs(30))
        }
    }

    /// Reconnect forever with exponential backoff between the given bounds.
    pub fn exponential(initial_backoff: Duration, max_backoff: Duration) -> Self {
        ReconnectPolicy {
            enabled: true,
            initial_backoff,
            max_backoff,
            max_attempts: None,
        }
    }

    /// Gives up after `attempts` failed attempts in a row.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// The delay before reconnect attempt `attempt` (0-based), given a jitter
    /// sample `unit` in `[0, 1]` (clamped). Deterministic, for tests; the SDK
    /// passes a random sample.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let max = self.max_backoff.max(self.initial_backoff);
        // 2^attempt saturates long before u32 attempts could overflow it.
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        let ceiling = self.initial_backoff.saturating_mul(factor).min(max);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let half = ceiling / 2;
        let span = ceiling - half;
        let extra = Duration::try_from_secs_f64(span.as_secs_f64() * unit)
            .unwrap_or(span)
            .min(span);
        half.saturating_add(extra)
    }

    /// [`ReconnectPolicy::delay`] with a random jitter sample.
    pub(crate) fn jittered_delay(&self, attempt: u32) -> Duration {
        self.delay(attempt, rand::random::<f64>())
    }
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self::disabled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ReconnectPolicy {
        ReconnectPolicy::exponential(Duration::from_millis(100), Duration::from_secs(5))
    }

    #[test]
    fn delays_double_until_the_cap() {
        let p = policy();
        let ceilings: Vec<u128> = (0..8).map(|n| p.delay(n, 1.0).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }

    #[test]
    fn jitter_stays_within_half_to_full_ceiling() {
        let p = policy();
        for attempt in 0..40 {
            let ceiling = p.delay(attempt, 1.0);
            for unit in [0.0, 0.25, 0.5, 0.999, 1.0] {
                let d = p.delay(attempt, unit);
                assert!(
                    d >= ceiling / 2 && d <= ceiling,
                    "attempt {attempt} unit {unit}: {d:?}"
                );
            }
            assert!(p.jittered_delay(attempt) <= p.max_backoff);
            assert!(p.jittered_delay(attempt) >= p.initial_backoff / 2);
        }
    }

    #[test]
    fn huge_attempt_counts_and_bad_samples_do_not_overflow() {
        let p = policy();
        assert_eq!(p.delay(u32::MAX, 1.0), Duration::from_secs(5));
        assert_eq!(p.delay(3, f64::NAN), Duration::from_millis(400));
        assert_eq!(p.delay(3, 7.0), Duration::from_millis(800));
        assert_eq!(p.delay(3, -1.0), Duration::from_millis(400));
        let wide = ReconnectPolicy::exponential(Duration::MAX, Duration::MAX);
        assert!(wide.delay(10, 1.0) >= Duration::MAX / 2);
    }

    #[test]
    fn max_below_initial_caps_at_initial() {
        let p = ReconnectPolicy::exponential(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(p.delay(5, 1.0), Duration::from_secs(2));
    }
}
