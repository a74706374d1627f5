/** Reconnect policy: exponential backoff with full jitter. */

/** Whether and how fast to re-establish a dropped connection. */
export interface ReconnectOptions {
  /** Reconnect at all. Default `true`. */
  enabled?: boolean;
  /** Upper bound of the first delay, in ms. Default 1000 (SPEC.md §7.9: "starting near one second"). */
  initialDelayMs?: number;
  /** Upper bound of every delay, in ms. Default 30000. */
  maxDelayMs?: number;
  /** Give up after this many failed attempts in a row. Default: never. */
  maxAttempts?: number;
}

/** {@link ReconnectOptions} with every default filled in. */
export type ReconnectPolicy = Required<ReconnectOptions>;

export function reconnectPolicy(options: ReconnectOptions | boolean | undefined): ReconnectPolicy {
  const o = typeof options === "boolean" ? { enabled: options } : (options ?? {});
  return {
    enabled: o.enabled ?? true,
    initialDelayMs: o.initialDelayMs ?? 1000,
    maxDelayMs: o.maxDelayMs ?? 30_000,
    maxAttempts: o.maxAttempts ?? Number.POSITIVE_INFINITY,
  };
}

/**
 * The delay before reconnect attempt `attempt` (0-based): "full jitter",
 * a uniformly random time in `[0, min(maxDelayMs, initialDelayMs · 2^attempt)]`,
 * so that many clients dropped at once do not come back in lockstep.
 * `unit` is the random sample in `[0, 1)` (clamped; injected in tests).
 */
export function backoffDelay(policy: ReconnectPolicy, attempt: number, unit: number): number {
  const max = Math.max(policy.maxDelayMs, policy.initialDelayMs);
  const ceiling = Math.min(max, policy.initialDelayMs * 2 ** Math.min(attempt, 52));
  const u = Number.isFinite(unit) ? Math.min(Math.max(unit, 0), 1) : 0;
  return Math.floor(ceiling * u);
}
