import { SortedWindow } from './sorted-window.js'

/**
 * Output-length prediction for admission: a request's need is prompt + predicted output, and the prediction
 * is the configured quantile (P90/P95) of the completion lengths observed for the model over a rolling
 * window, capped by the request's `max_tokens`. A high quantile rather than the mean because an
 * under-prediction is what fills the KV cache behind admission's back (the reservation then grows while the
 * request streams, but other requests were already admitted into that space); the cost of a high quantile is
 * over-reservation, which `stats()` reports next to the coverage so an operator can see the trade.
 *
 * Caveat: a completion cut off by its own `max_tokens` is observed at that length (the true length is
 * censored), so clients sending small `max_tokens` pull the quantile down for everyone on the model. The
 * coverage figure shows when that bias matters; the ledger's growth keeps it from under-counting KV.
 */
export interface Predictor {
  /** min(maxTokens, quantile of the model's window), or the cold-start default until `minSamples`. */
  predict(model: string, maxTokens: number | undefined): number
  /** A request ended having produced `actual` completion tokens where `predicted` had been reserved. */
  observe(model: string, predicted: number, actual: number): void
  stats(): PredictorStats[]
}

export interface PredictorStats {
  readonly model: string
  /** The uncapped prediction now (the quantile, or the cold-start default). */
  readonly quantileTokens: number
  /** Observations in the window. */
  readonly samples: number
  /** Observations ever seen for the model. */
  readonly observed: number
  readonly coldStart: boolean
  /** Share of the window's requests whose actual length ≤ predicted (NaN with no observation). */
  readonly coverageRatio: number
  /** Σ max(0, predicted − actual) / Σ predicted over the window: the share of reserved output never used. */
  readonly overReservationRatio: number
}

/** Validated by the config schema (src/config/sections/predictor.ts); the predictor does not check them again. */
export interface PredictorOptions {
  /** 0 < quantile ≤ 1, e.g. 0.9 for P90. */
  quantile: number
  /** Observations kept per model; at least minSamples. */
  windowSize: number
  /** Prediction until a model has `minSamples` observations. */
  coldStartOutputTokens: number
  minSamples: number
  /** Models tracked at most; the least recently observed is forgotten past it (model names come from clients). */
  maxModels?: number
}

/** Default bound on tracked models: a backend serves a handful; the bound only stops a client inventing names. */
const DEFAULT_MAX_MODELS = 64

/** Rolling coverage and over-reservation figures over the same window as the quantile. */
class CoverageWindow {
  readonly #covered: Uint8Array
  readonly #overTokens: Float64Array
  readonly #predictedTokens: Float64Array
  #next = 0
  #size = 0
  coveredCount = 0
  overSum = 0
  predictedSum = 0

  constructor(capacity: number) {
    this.#covered = new Uint8Array(capacity)
    this.#overTokens = new Float64Array(capacity)
    this.#predictedTokens = new Float64Array(capacity)
  }

  get size(): number {
    return this.#size
  }

  push(predicted: number, actual: number): void {
    const i = this.#next
    if (this.#size === this.#covered.length) {
      this.coveredCount -= this.#covered[i] as number
      this.overSum -= this.#overTokens[i] as number
      this.predictedSum -= this.#predictedTokens[i] as number
    } else {
      this.#size++
    }
    const covered = actual <= predicted ? 1 : 0
    const over = Math.max(0, predicted - actual)
    this.#covered[i] = covered
    this.#overTokens[i] = over
    this.#predictedTokens[i] = predicted
    this.coveredCount += covered
    this.overSum += over
    this.predictedSum += predicted
    this.#next = (i + 1) % this.#covered.length
  }
}

interface ModelState {
  readonly lengths: SortedWindow
  readonly coverage: CoverageWindow
  observed: number
}

class PredictorImpl implements Predictor {
  readonly #options: Required<PredictorOptions>
  /** Insertion order doubles as recency: a model is re-inserted on every observation. */
  readonly #models = new Map<string, ModelState>()

  // Trusts its options: the config schema's predictor section checks them, windowSize >= minSamples included.
  constructor(options: PredictorOptions) {
    this.#options = { maxModels: DEFAULT_MAX_MODELS, ...options }
  }

  #uncapped(state: ModelState | undefined): number {
    if (state === undefined || state.lengths.size < this.#options.minSamples) return this.#options.coldStartOutputTokens
    return state.lengths.quantile(this.#options.quantile) ?? this.#options.coldStartOutputTokens
  }

  predict(model: string, maxTokens: number | undefined): number {
    const value = this.#uncapped(this.#models.get(model))
    return maxTokens === undefined || !(maxTokens >= 0) ? value : Math.min(maxTokens, value)
  }

  observe(model: string, predicted: number, actual: number): void {
    if (!(actual >= 0) || !(predicted >= 0)) return
    let state = this.#models.get(model)
    if (state === undefined) {
      state = {
        lengths: new SortedWindow(this.#options.windowSize),
        coverage: new CoverageWindow(this.#options.windowSize),
        observed: 0,
      }
      if (this.#models.size >= this.#options.maxModels) {
        const oldest = this.#models.keys().next()
        if (oldest.done !== true) this.#models.delete(oldest.value)
      }
    } else {
      this.#models.delete(model)
    }
    this.#models.set(model, state)
    state.lengths.push(actual)
    state.coverage.push(predicted, actual)
    state.observed++
  }

  stats(): PredictorStats[] {
    const out: PredictorStats[] = []
    for (const [model, state] of this.#models) {
      const n = state.coverage.size
      out.push({
        model,
        quantileTokens: this.#uncapped(state),
        samples: state.lengths.size,
        observed: state.observed,
        coldStart: state.lengths.size < this.#options.minSamples,
        coverageRatio: n === 0 ? Number.NaN : state.coverage.coveredCount / n,
        overReservationRatio:
          state.coverage.predictedSum > 0 ? state.coverage.overSum / state.coverage.predictedSum : 0,
      })
    }
    return out
  }
}

export function createPredictor(options: PredictorOptions): Predictor {
  return new PredictorImpl(options)
}
