import type { Clock } from '../core/index.js'
import type { CapacityView } from './contracts.js'
import type { QueueStore, UserQueue } from './queue-store.js'

/**
 * Until a backlog has been measured, assume a backend's usable KV turns over every 10 seconds (requests of a
 * few hundred tokens at tens of tokens/s). Used only for retry-after, never for early rejection.
 */
const COLD_TURNOVER_MS = 10_000 // 10 seconds
/** Smallest drain rate trusted (tokens/ms); below it the wait is the longest predicted. */
const MIN_DRAIN_TOKENS_PER_MS = 1e-6
/** Predicted waits are capped here: past it the figure means only "far beyond any deadline". */
export const MAX_PREDICTED_WAIT_MS = 3_600_000 // 1 hour

/**
 * The predicted wait of a request, what `retry-after` and early rejection are made of: the tokens that will be
 * admitted before it, minus the room there is now on all usable backends, divided by the measured drain rate.
 *
 * Tokens ahead are the smaller of two views: FIFO's (everything queued) and a weighted fair share's (the
 * user's own queue scaled by the active weight over the user's weight — under VTC or fair TPM the others
 * are served about that much meanwhile). The smaller one is what a fair policy would give; FIFO is never
 * faster than "everything ahead". Erring short keeps early rejection from turning away a light user stuck
 * behind a heavy one's backlog it will in fact overtake.
 */
export class WaitPrediction {
  readonly #clock: Clock
  readonly #store: QueueStore
  readonly #capacity: CapacityView
  readonly #drain: DrainRate
  #kvBound = false

  constructor(clock: Clock, store: QueueStore, capacity: CapacityView) {
    this.#clock = clock
    this.#store = store
    this.#capacity = capacity
    this.#drain = new DrainRate(clock.now())
  }

  /** Whether requests are waiting for KV right now (the last decision was held back by KV, not quotas). */
  get kvBound(): boolean {
    return this.#kvBound
  }

  /** Only KV-bound time is counted into the drain rate. */
  setKvBound(kvBound: boolean, now: number): void {
    if (kvBound === this.#kvBound) return
    this.#kvBound = kvBound
    this.#drain.setBacklogged(kvBound, now)
  }

  /** Tokens of need admitted while requests waited for KV. */
  noteAdmitted(tokens: number, now: number): void {
    this.#drain.noteAdmitted(tokens, now)
  }

  /** The measured drain rate (tokens/ms), undefined until measured. */
  measuredRate(now = this.#clock.now()): number | undefined {
    return this.#drain.tokensPerMs(now)
  }

  /** Predicted wait for `needTokens` at the back of `queue`'s user (already in it, or about to join). */
  waitMs(queue: UserQueue, needTokens: number, alreadyQueued: boolean, now = this.#clock.now()): number {
    const store = this.#store
    const extra = alreadyQueued ? 0 : needTokens
    const fifoAhead = store.queuedNeedTokens + extra
    const activeWeight = store.activeWeight + (queue.size === 0 && !alreadyQueued ? queue.weight : 0)
    const fairAhead = ((queue.needTokens + extra) * activeWeight) / queue.weight
    const ahead = Math.min(fifoAhead, fairAhead)
    // The tokens ahead can go to any usable backend, so all their room counts.
    const room = this.#capacity.snapshot()?.totalRoomTokens ?? 0
    const shortfall = ahead - room
    if (shortfall <= 0) return 0
    const rate = this.#drain.tokensPerMs(now) ?? this.#capacity.usableTokens() / COLD_TURNOVER_MS
    if (!(rate > MIN_DRAIN_TOKENS_PER_MS)) return MAX_PREDICTED_WAIT_MS
    return Math.min(MAX_PREDICTED_WAIT_MS, shortfall / rate)
  }
}

/** Memory of the drain rate, in KV-bound time: the last ~10 s of waiting weigh most. */
const DRAIN_TIME_CONSTANT_MS = 10_000 // 10 seconds
/** KV-bound time to observe before the rate counts as measured. */
const DRAIN_MIN_OBSERVED_MS = 1_000 // 1 second

/**
 * How fast the queue drains: tokens of need admitted per millisecond *while requests were waiting for KV*.
 *
 * Only that time counts (the controller says when it starts and stops). When the queue is empty, admissions
 * are limited by arrivals; while requests wait only on a quota, or no backend is usable, KV is not what holds
 * them. Counting such time would make the gateway look slow and early-reject the next burst (the seed
 * prototype's "second run rejected almost entirely"). An idle period leaves the estimate where the last
 * backlog left it.
 *
 * The estimate is a ratio of exponentially decayed sums, tokens over time, rather than an average of
 * per-second samples: admissions come in bursts (a batch of requests ends, a batch starts), and averaging
 * fixed windows makes the figure depend on where the bursts fall and starts biased towards the first window.
 */
class DrainRate {
  #tokens = 0
  #timeMs = 0
  #observedMs = 0
  #lastMs: number
  #backlogged = false

  constructor(nowMs: number) {
    this.#lastMs = nowMs
  }

  #advance(nowMs: number): void {
    const dt = Math.max(0, nowMs - this.#lastMs)
    this.#lastMs = nowMs
    if (!this.#backlogged || dt === 0) return
    const decay = Math.exp(-dt / DRAIN_TIME_CONSTANT_MS)
    this.#tokens *= decay
    // ∫ e^(−(t_now − t)/τ) dt over the new stretch, added to the decayed old time.
    this.#timeMs = this.#timeMs * decay + DRAIN_TIME_CONSTANT_MS * (1 - decay)
    this.#observedMs += dt
  }

  setBacklogged(backlogged: boolean, nowMs: number): void {
    this.#advance(nowMs)
    this.#backlogged = backlogged
  }

  /** Tokens of need admitted while requests waited for KV. */
  noteAdmitted(tokens: number, nowMs: number): void {
    this.#advance(nowMs)
    this.#tokens += tokens
  }

  /** The measured rate, or undefined until a second of KV-bound waiting has been seen. */
  tokensPerMs(nowMs: number): number | undefined {
    this.#advance(nowMs)
    return this.#observedMs < DRAIN_MIN_OBSERVED_MS ? undefined : this.#tokens / this.#timeMs
  }
}
