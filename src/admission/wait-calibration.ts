/**
 * Predicted waits checked against what happened, so that early rejection is right when it rejects and backs
 * off while its predictions run long.
 *
 * A sample is the ratio of the wait that happened to the wait predicted when the request arrived, smoothed by
 * `SMOOTHING_MS` on both sides so that a zero prediction or a zero wait still gives a finite ratio:
 *
 * - an admitted request: the wait it had;
 * - a request that expired in the queue: the deadline it reached (a lower bound of its would-be wait);
 * - an early-rejected request: the time the queue took, from its rejection on, to admit as many tokens as it
 *   was predicted to wait for (`WaitPrediction`'s shadow of it), or, if that has not happened within
 *   `SHADOW_TIMEOUT_FACTOR` × the prediction, the time so far (again a lower bound).
 *
 * Samples are kept per need bucket (the need's share of the usable KV: long prompts among few requests drain
 * differently from many short ones, and a request that needs a fifth of the cache waits for a fifth of the
 * cache to free at once), with the buckets pooled while one has too few. The quantiles of the ratio scale the
 * raw prediction: the median for retry-after, a low quantile for early rejection, which then turns away only
 * what even an optimistic reading says cannot make its deadline. Predictions that ran long pull the low
 * quantile below 1 and early rejection backs off; predictions 10× too long (the floor) all but turn it off.
 */

/** Added to the predicted and to the measured wait before dividing (ms). */
const SMOOTHING_MS = 100
/** Samples kept per bucket. */
const SAMPLES_PER_BUCKET = 64
/** A bucket's own samples are used once it has this many; before, the pooled ones. */
const MIN_BUCKET_SAMPLES = 16
/** Before this many samples in all, predictions are taken as they are (factor 1). */
const MIN_SAMPLES = 8
/** Factors are kept within [1/10, 10]: beyond, the model is broken, not off. */
const MIN_FACTOR = 0.1
const MAX_FACTOR = 10
/** Upper bounds of the need buckets, as a share of the largest usable backend's KV; the last is open. */
export const NEED_BUCKET_BOUNDS = [0.01, 0.05, 0.2] as const
export const NEED_BUCKET_LABELS = ['lt1pct', 'lt5pct', 'lt20pct', 'ge20pct'] as const
export type NeedBucket = (typeof NEED_BUCKET_LABELS)[number]

/** The quantile of the ratio early rejection scales its prediction by. */
export const EARLY_REJECT_QUANTILE = 0.25
export const RETRY_AFTER_QUANTILE = 0.5

export function needBucket(needTokens: number, usableTokens: number): number {
  const share = usableTokens > 0 ? needTokens / usableTokens : 1
  const i = NEED_BUCKET_BOUNDS.findIndex((bound) => share < bound)
  return i === -1 ? NEED_BUCKET_BOUNDS.length : i
}

class Ring {
  readonly #values = new Float64Array(SAMPLES_PER_BUCKET)
  #next = 0
  size = 0

  push(value: number): void {
    this.#values[this.#next] = value
    this.#next = (this.#next + 1) % SAMPLES_PER_BUCKET
    this.size = Math.min(SAMPLES_PER_BUCKET, this.size + 1)
  }

  values(): Float64Array {
    return this.#values.subarray(0, this.size)
  }
}

export class WaitCalibration {
  readonly #buckets = Array.from({ length: NEED_BUCKET_LABELS.length }, () => new Ring())

  /** One prediction checked: `actualMs` happened where `predictedMs` was said. */
  record(bucket: number, predictedMs: number, actualMs: number): number {
    const ratio = (Math.max(0, actualMs) + SMOOTHING_MS) / (Math.max(0, predictedMs) + SMOOTHING_MS)
    this.#buckets[bucket]?.push(ratio)
    return ratio
  }

  /** The factor a raw prediction for `bucket` is scaled by at quantile `q` (1 until enough is known). */
  factor(bucket: number, q: number): number {
    const own = this.#buckets[bucket]
    let values: ArrayLike<number>
    if (own !== undefined && own.size >= MIN_BUCKET_SAMPLES) values = own.values()
    else {
      const pooled: number[] = []
      for (const ring of this.#buckets) pooled.push(...ring.values())
      if (pooled.length < MIN_SAMPLES) return 1
      values = pooled
    }
    const sorted = Float64Array.from(values).sort()
    const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)))
    return Math.min(MAX_FACTOR, Math.max(MIN_FACTOR, sorted[rank - 1] as number))
  }

  samples(): number {
    return this.#buckets.reduce((n, ring) => n + ring.size, 0)
  }
}

/** Memory of the TTFT-after-admission fit, in samples: the last ~50 weigh most. */
const TTFT_FIT_SAMPLES = 50
const TTFT_MIN_SAMPLES = 5
/** The fit's mean is scaled up by this: the deadline derived from the SLO must leave room for a slow one. */
export const TTFT_MARGIN = 1.25

/**
 * Time from admission to the first token, as a line in the prompt's length (a base for the round trips
 * and vLLM's scheduling, plus prefill per prompt token), fitted by least squares with exponential
 * forgetting. With `admission.ttftSloMs`, a request's queue deadline is the SLO less this.
 */
export class TtftAfterAdmission {
  #n = 0
  #sx = 0
  #sy = 0
  #sxx = 0
  #sxy = 0
  #count = 0

  note(promptTokens: number, ms: number): void {
    if (!(ms >= 0) || !(promptTokens >= 0)) return
    const keep = 1 - 1 / TTFT_FIT_SAMPLES
    this.#n = this.#n * keep + 1
    this.#sx = this.#sx * keep + promptTokens
    this.#sy = this.#sy * keep + ms
    this.#sxx = this.#sxx * keep + promptTokens * promptTokens
    this.#sxy = this.#sxy * keep + promptTokens * ms
    this.#count++
  }

  /** Expected ms from admission to first token for a prompt, with the margin; undefined until fitted. */
  estimateMs(promptTokens: number): number | undefined {
    if (this.#count < TTFT_MIN_SAMPLES) return undefined
    const meanX = this.#sx / this.#n
    const meanY = this.#sy / this.#n
    const varX = this.#sxx / this.#n - meanX * meanX
    // All prompts the same length (or nearly): no slope to fit, the mean it is.
    const slope = varX > 1 ? Math.max(0, (this.#sxy / this.#n - meanX * meanY) / varX) : 0
    const base = meanY - slope * meanX
    return Math.max(0, (Math.max(0, base) + slope * promptTokens) * TTFT_MARGIN)
  }
}
