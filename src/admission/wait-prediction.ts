import { type Clock, type HeapNode, IndexedHeap } from '../core/index.js'
import type { WaitAhead } from '../policies/index.js'
import type { CapacityView } from './contracts.js'
import {
  EARLY_REJECT_QUANTILE,
  NEED_BUCKET_LABELS,
  type NeedBucket,
  needBucket,
  RETRY_AFTER_QUANTILE,
  WaitCalibration,
} from './wait-calibration.js'

/**
 * Until a backlog has been measured, assume a backend's usable KV turns over every 10 seconds (requests of a
 * few hundred tokens at tens of tokens/s). Used only for retry-after, never for early rejection.
 */
const COLD_TURNOVER_MS = 10_000 // 10 seconds
/** Smallest drain rate trusted (tokens/ms); below it the wait is the longest predicted. */
const MIN_DRAIN_TOKENS_PER_MS = 1e-6
/** Predicted waits are capped here: past it the figure means only "far beyond any deadline". */
export const MAX_PREDICTED_WAIT_MS = 3_600_000 // 1 hour

/** A wait sample's origin, a metric label: admitted, expired in the queue, or early-rejected (shadowed). */
export type WaitCheckKind = 'admitted' | 'expired' | 'rejected'

export interface WaitCheck {
  readonly kind: WaitCheckKind
  readonly bucket: NeedBucket
  readonly predictedMs: number
  readonly actualMs: number
}

/** Shadows kept at most (early-rejected requests whose would-be wait is still being measured). */
const MAX_SHADOWS = 1_024
/** A shadow not drained within this many times its prediction (and at least a minute) stops and reports. */
const SHADOW_TIMEOUT_FACTOR = 10
const SHADOW_MIN_TIMEOUT_MS = 60_000 // 1 minute

interface Shadow extends HeapNode {
  /** The departed-need total at which the tokens ahead of it would have left the queue. */
  readonly target: number
  /** Its own need: once those are gone, it would have been admitted when this much room was free. */
  readonly needTokens: number
  readonly startMs: number
  readonly predictedMs: number
  readonly bucket: number
  readonly timeoutAtMs: number
}

/**
 * The predicted wait of a request, what `retry-after` and early rejection are made of: the tokens the policy
 * in force admits before it (`Policy.waitAhead`, in its own order: everything queued under fifo, much less
 * under vtc for a light user behind a heavy one), plus its own need, minus the room there is now on all usable
 * backends, divided by the measured drain rate; and never less than its own quota's wait. The raw figure is
 * then scaled by how such predictions turned out (wait-calibration.ts): early-rejected requests are shadowed
 * until the queue has drained what they would have waited for.
 */
export class WaitPrediction {
  readonly #clock: Clock
  readonly #capacity: CapacityView
  readonly #drain: DrainRate
  readonly #calibration = new WaitCalibration()
  readonly #shadows = new IndexedHeap<Shadow>((a, b) => a.target < b.target)
  readonly #onCheck: ((check: WaitCheck) => void) | undefined
  /** Tokens of need that left the queue since start (admitted, expired, cancelled): the shadows' yardstick. */
  #departedTotal = 0
  #kvBound = false

  constructor(clock: Clock, capacity: CapacityView, onCheck?: (check: WaitCheck) => void) {
    this.#clock = clock
    this.#capacity = capacity
    this.#drain = new DrainRate(clock.now())
    this.#onCheck = onCheck
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

  /** Tokens of need admitted; `backlog`: while requests waited for KV (only those measure the drain). */
  noteAdmitted(tokens: number, now: number, backlog: boolean): void {
    if (backlog) this.#drain.noteAdmitted(tokens, now)
  }

  /** Tokens of need left the queue (admitted, or answered without admission): what was ahead moves on. */
  noteDeparted(tokens: number): void {
    this.#departedTotal += tokens
  }

  /** The measured drain rate (tokens/ms), undefined until measured. */
  measuredRate(now = this.#clock.now()): number | undefined {
    return this.#drain.tokensPerMs(now)
  }

  /** The need's bucket for the calibration (its share of the usable KV). */
  bucketOf(needTokens: number): number {
    return needBucket(needTokens, this.#capacity.snapshot()?.maxUsableTokens ?? this.#capacity.usableTokens())
  }

  /** The KV tokens that must drain before a request with `ahead` and `needTokens` fits (≥ 0). */
  shortfall(ahead: WaitAhead, needTokens: number): number {
    // The tokens ahead can go to any usable backend, so all their room counts.
    const room = this.#capacity.snapshot()?.totalRoomTokens ?? 0
    return Math.max(0, ahead.tokensAhead + needTokens - room)
  }

  /** The model's wait: the quota's, or the shortfall over the drain rate, whichever is longer (ms). */
  rawWaitMs(ahead: WaitAhead, needTokens: number, now = this.#clock.now()): number {
    const shortfall = this.shortfall(ahead, needTokens)
    let kvMs = 0
    if (shortfall > 0) {
      const rate = this.#drain.tokensPerMs(now) ?? this.#capacity.usableTokens() / COLD_TURNOVER_MS
      kvMs = rate > MIN_DRAIN_TOKENS_PER_MS ? shortfall / rate : MAX_PREDICTED_WAIT_MS
    }
    return Math.min(MAX_PREDICTED_WAIT_MS, Math.max(ahead.quotaWaitMs, kvMs))
  }

  /** A raw KV wait scaled by how such predictions turned out, at quantile `q` of the ratio. */
  calibrated(rawMs: number, bucket: number, q: number): number {
    return Math.min(MAX_PREDICTED_WAIT_MS, rawMs * this.#calibration.factor(bucket, q))
  }

  /** The factors in force for one bucket (retry-after's median, early rejection's low quantile). */
  factors(bucket: number): { median: number; low: number } {
    return {
      median: this.#calibration.factor(bucket, RETRY_AFTER_QUANTILE),
      low: this.#calibration.factor(bucket, EARLY_REJECT_QUANTILE),
    }
  }

  /** An admitted or expired request's wait against the raw prediction made when it arrived. */
  check(kind: 'admitted' | 'expired', bucket: number, predictedMs: number, actualMs: number): void {
    this.#calibration.record(bucket, predictedMs, actualMs)
    this.#report({ kind, bucket: NEED_BUCKET_LABELS[bucket] ?? 'ge20pct', predictedMs, actualMs })
  }

  /**
   * An early-rejected request: measure afterwards when it would have been admitted, had it stayed: once the
   * tokens ahead of it have left the queue (and, in the policy's order, nothing that came later overtook
   * it), at the first decision with room for its need.
   */
  shadow(ahead: WaitAhead, needTokens: number, predictedMs: number, bucket: number, now: number): void {
    if (this.#shadows.size >= MAX_SHADOWS) return
    this.#shadows.push({
      target: this.#departedTotal + ahead.tokensAhead,
      needTokens,
      startMs: now,
      predictedMs,
      bucket,
      timeoutAtMs: now + Math.max(SHADOW_MIN_TIMEOUT_MS, SHADOW_TIMEOUT_FACTOR * predictedMs),
      heapIndex: -1,
    })
  }

  /** After a dispatch: resolve the shadows whose turn would have come; O(1) when none is due. */
  settleShadows(now: number): void {
    if (this.#shadows.size === 0) return
    let maxRoom: number | undefined
    for (let top = this.#shadows.peek(); top !== undefined; top = this.#shadows.peek()) {
      if (top.target > this.#departedTotal) break
      maxRoom ??= this.#capacity.snapshot()?.maxRoomTokens ?? 0
      // Its turn has come; it goes when it fits. (Only the first in line is looked at: good enough for a check.)
      if (top.needTokens > maxRoom && now < top.timeoutAtMs) break
      this.#shadows.pop()
      this.#resolve(top, now)
    }
    // A shadow whose turn never comes (its tokens ahead never leave) stops at its timeout, reporting a lower bound.
    if (this.#shadows.size >= MAX_SHADOWS / 2) {
      for (const shadow of [...this.#shadows.ascending()]) {
        if (now >= shadow.timeoutAtMs && this.#shadows.remove(shadow)) this.#resolve(shadow, now)
      }
    }
  }

  #resolve(shadow: Shadow, now: number): void {
    const actualMs = now - shadow.startMs
    this.#calibration.record(shadow.bucket, shadow.predictedMs, actualMs)
    this.#report({
      kind: 'rejected',
      bucket: NEED_BUCKET_LABELS[shadow.bucket] ?? 'ge20pct',
      predictedMs: shadow.predictedMs,
      actualMs,
    })
  }

  #report(check: WaitCheck): void {
    try {
      this.#onCheck?.(check)
    } catch {
      // A metrics listener's failure must not reach the request path.
    }
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
