import { CoverageWindow } from './coverage-window.js'
import { SortedWindow } from './sorted-window.js'

/**
 * Output-length prediction for admission: a request's need is prompt + predicted output, and the prediction
 * is the configured quantile (P90/P95) of the completion lengths observed over a rolling window, capped by the
 * request's `max_tokens`. A high quantile rather than the mean because an under-prediction is what fills the KV
 * cache behind admission's back (the reservation grows while the request streams, but other requests were
 * already admitted into that space); the cost is over-reservation, which `stats()` reports beside the coverage.
 *
 * Three rules make it hard to fool and quick to learn:
 *
 * - **Censoring.** A completion that ended at its own `max_tokens` (`finish_reason: length`) says only that
 *   the natural length was *at least* that. Below the prediction in force it is set aside (it would pull the
 *   quantile down for everyone: 1,000 requests with `max_tokens: 1` used to make the prediction 1 token); at
 *   or above it, it is kept, so it can only raise the quantile.
 * - **Windows per user.** Each user (as identity names it) has a window of its own; a user with
 *   `userMinSamples` completions is predicted from its own, the others from the model's window, never below
 *   the longest answer they had themselves. One user's short answers do not shrink another's reservation.
 * - **A conservative cold start that learns.** A model never seen gets `coldStartOutputTokens` (capped by
 *   `max_tokens`); each completion moves the figure towards the window's quantile (quickly at first: the
 *   cold figure weighs (1 − n/minSamples)²), reached at `minSamples`, never below the longest answer seen. `snapshot()`/`restore()` carry the windows
 *   over a restart (`predictor.stateFile`).
 */
export interface Predictor {
  /** min(maxTokens, the prediction for the model and user), see above. */
  predict(model: string, maxTokens: number | undefined, user?: string): number
  /**
   * A request ended having produced `actual` completion tokens (per sequence) where the predictor had said
   * `predicted` (capped by its max_tokens): coverage, and the sample unless it is censored.
   */
  observe(model: string, predicted: number, actual: number, details?: ObservationDetails): void
  stats(): PredictorStats[]
  /** The windows, for a restart (`restore`). */
  snapshot(): PredictorSnapshot
  /** Seed the windows from a snapshot; models and users already observed keep theirs. */
  restore(snapshot: PredictorSnapshot): void
}

export interface ObservationDetails {
  /** Whose request it was: its own window learns from it. */
  readonly user?: string
  /** `length` (or the answer reached `maxTokens`): cut by the client's own limit, a censored sample. */
  readonly finishReason?: string
  readonly maxTokens?: number
}

export interface PredictorStats {
  readonly model: string
  /** The uncapped prediction for a user without a window of its own (the quantile, or the cold-start figure). */
  readonly quantileTokens: number
  /** Observations in the model's window. */
  readonly samples: number
  /** Observations ever seen for the model. */
  readonly observed: number
  /** Completions set aside as censored (cut by max_tokens below the prediction). */
  readonly censored: number
  /** Users with a window of their own for the model. */
  readonly users: number
  readonly coldStart: boolean
  /** Share of the window's requests whose actual length ≤ predicted (NaN with no observation). */
  readonly coverageRatio: number
  /** Σ max(0, predicted − actual) / Σ predicted over the window: the share of reserved output never used. */
  readonly overReservationRatio: number
}

/** Windows as kept over a restart: each model's lengths and its users' lengths, oldest first. */
export interface PredictorSnapshot {
  readonly version: 1
  readonly models: Readonly<
    Record<
      string,
      { readonly lengths: readonly number[]; readonly users?: Readonly<Record<string, readonly number[]>> }
    >
  >
}

/** Validated by the config schema (src/config/sections/predictor.ts); the predictor does not check them again. */
export interface PredictorOptions {
  /** 0 < quantile ≤ 1, e.g. 0.9 for P90. */
  quantile: number
  /** Observations kept per model; at least minSamples. */
  windowSize: number
  /** Prediction for a model never seen (capped by max_tokens). */
  coldStartOutputTokens: number
  /** Completions per model before the quantile alone is trusted. */
  minSamples: number
  /** Observations kept per user and model; 0 turns the per-user windows off. */
  userWindowSize?: number
  /** A user's own completions before its own window predicts for it. */
  userMinSamples?: number
  /** Users tracked per model at most; the least recently observed is forgotten past it. */
  maxUsersPerModel?: number
  /** Models tracked at most; the least recently observed is forgotten past it (model names come from clients). */
  maxModels?: number
}

/** Default bound on tracked models: a backend serves a handful; the bound only stops a client inventing names. */
const DEFAULT_MAX_MODELS = 64
export const DEFAULT_USER_WINDOW_SIZE = 200 // completions remembered per user and model
export const DEFAULT_USER_MIN_SAMPLES = 10 // a user's own completions before its window is trusted
const DEFAULT_MAX_USERS_PER_MODEL = 1_000

interface UserState {
  readonly lengths: SortedWindow
}

interface ModelState {
  readonly lengths: SortedWindow
  readonly coverage: CoverageWindow
  /** Insertion order doubles as recency, as for models. */
  readonly users: Map<string, UserState>
  observed: number
  censored: number
}

class PredictorImpl implements Predictor {
  readonly #options: Required<PredictorOptions>
  /** Insertion order doubles as recency: a model is re-inserted on every observation. */
  readonly #models = new Map<string, ModelState>()

  // Trusts its options: the config schema's predictor section checks them, windowSize >= minSamples included.
  constructor(options: PredictorOptions) {
    this.#options = {
      userWindowSize: DEFAULT_USER_WINDOW_SIZE,
      userMinSamples: DEFAULT_USER_MIN_SAMPLES,
      maxUsersPerModel: DEFAULT_MAX_USERS_PER_MODEL,
      maxModels: DEFAULT_MAX_MODELS,
      ...options,
    }
  }

  /** The model's own figure: the cold-start blend below minSamples, the quantile from there on. */
  #modelFigure(state: ModelState | undefined): number {
    const { coldStartOutputTokens: cold, minSamples, quantile } = this.#options
    const n = state?.lengths.size ?? 0
    if (state === undefined || n === 0) return cold
    const q = state.lengths.quantile(quantile) ?? cold
    if (n >= minSamples) return q
    // From the conservative figure towards the data, faster at first (the cold figure's weight is
    // (1 − n/minSamples)²: a quarter of it left halfway), never below the longest answer seen.
    const coldWeight = (1 - n / minSamples) ** 2
    return Math.max(state.lengths.max() ?? 0, Math.round(cold * coldWeight + q * (1 - coldWeight)))
  }

  #userFigure(state: ModelState | undefined, user: string | undefined): number {
    const modelFigure = this.#modelFigure(state)
    const own = user === undefined ? undefined : state?.users.get(user)
    if (own === undefined || own.lengths.size === 0) return modelFigure
    if (own.lengths.size >= this.#options.userMinSamples) {
      return own.lengths.quantile(this.#options.quantile) ?? modelFigure
    }
    return Math.max(modelFigure, own.lengths.max() ?? 0)
  }

  predict(model: string, maxTokens: number | undefined, user?: string): number {
    const value = this.#userFigure(this.#models.get(model), user)
    return maxTokens === undefined || !(maxTokens >= 0) ? value : Math.min(maxTokens, value)
  }

  observe(model: string, predicted: number, actual: number, details: ObservationDetails = {}): void {
    if (!(actual >= 0) || !(predicted >= 0)) return
    const state = this.#touchModel(model)
    state.observed++
    state.coverage.push(predicted, actual)
    const truncated =
      details.finishReason === 'length' || (details.maxTokens !== undefined && actual >= details.maxTokens)
    // Each window judges censoring against its own figure: a cut answer may raise one and be set aside by
    // the other, never pull either down.
    const userFigure = truncated ? this.#userFigure(state, details.user) : 0
    const modelCensored = truncated && actual < this.#modelFigure(state)
    if (modelCensored) state.censored++
    else state.lengths.push(actual)
    if (details.user !== undefined && this.#options.userWindowSize > 0 && !(truncated && actual < userFigure)) {
      this.#touchUser(state, details.user).lengths.push(actual)
    }
  }

  #touchModel(model: string): ModelState {
    let state = this.#models.get(model)
    if (state === undefined) {
      state = {
        lengths: new SortedWindow(this.#options.windowSize),
        coverage: new CoverageWindow(this.#options.windowSize),
        users: new Map(),
        observed: 0,
        censored: 0,
      }
      if (this.#models.size >= this.#options.maxModels) {
        const oldest = this.#models.keys().next()
        if (oldest.done !== true) this.#models.delete(oldest.value)
      }
    } else {
      this.#models.delete(model)
    }
    this.#models.set(model, state)
    return state
  }

  #touchUser(state: ModelState, user: string): UserState {
    let own = state.users.get(user)
    if (own === undefined) {
      own = { lengths: new SortedWindow(this.#options.userWindowSize) }
      if (state.users.size >= this.#options.maxUsersPerModel) {
        const oldest = state.users.keys().next()
        if (oldest.done !== true) state.users.delete(oldest.value)
      }
    } else {
      state.users.delete(user)
    }
    state.users.set(user, own)
    return own
  }

  stats(): PredictorStats[] {
    const out: PredictorStats[] = []
    for (const [model, state] of this.#models) {
      const n = state.coverage.size
      out.push({
        model,
        quantileTokens: this.#modelFigure(state),
        samples: state.lengths.size,
        observed: state.observed,
        censored: state.censored,
        users: state.users.size,
        coldStart: state.lengths.size < this.#options.minSamples,
        coverageRatio: n === 0 ? Number.NaN : state.coverage.coveredCount / n,
        overReservationRatio:
          state.coverage.predictedSum > 0 ? state.coverage.overSum / state.coverage.predictedSum : 0,
      })
    }
    return out
  }

  snapshot(): PredictorSnapshot {
    const models: Record<string, { lengths: number[]; users: Record<string, number[]> }> = {}
    for (const [model, state] of this.#models) {
      const users: Record<string, number[]> = {}
      for (const [user, own] of state.users) users[user] = own.lengths.values()
      models[model] = { lengths: state.lengths.values(), users }
    }
    return { version: 1, models }
  }

  restore(snapshot: PredictorSnapshot): void {
    const valid = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0
    for (const [model, saved] of Object.entries(snapshot.models)) {
      if (this.#models.has(model) || !Array.isArray(saved?.lengths)) continue
      const state = this.#touchModel(model)
      for (const v of saved.lengths) if (valid(v)) state.lengths.push(v)
      state.observed = state.lengths.size
      if (this.#options.userWindowSize === 0) continue
      for (const [user, lengths] of Object.entries(saved.users ?? {})) {
        if (!Array.isArray(lengths)) continue
        const own = this.#touchUser(state, user)
        for (const v of lengths) if (valid(v)) own.lengths.push(v)
      }
    }
  }
}

export function createPredictor(options: PredictorOptions): Predictor {
  return new PredictorImpl(options)
}
