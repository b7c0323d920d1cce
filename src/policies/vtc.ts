import { type Static, Type } from 'typebox'
import { when } from '../core/index.js'
import { Backlog } from './backlog.js'
import { IndexedMinHeap } from '../core/index.js'
import { createOptionsParser } from './options.js'
import type { Policy, PolicyContext, PolicyRequest, PolicyUserState } from './policy.js'

/** How often idle, unconfigured users' counters are forgotten (ms). */
const PRUNE_EVERY_MS = 10_000 // 10 seconds

const DEFAULT_W_IN = 1 // counter units per prompt token (the paper's w_in)
const DEFAULT_W_OUT = 2 // per completion token: output priced twice input, as OpenAI's price list does

export const vtcOptionsSchema = Type.Object(
  {
    /** Price of one prompt token in counter units (the paper's w_in). */
    wIn: Type.Number({ minimum: 0, default: DEFAULT_W_IN }),
    /** Price of one completion token (w_out). */
    wOut: Type.Number({ minimum: 0, default: DEFAULT_W_OUT }),
    /**
     * true (default): charge prompt + predicted completion at admission, charge streamed tokens only beyond
     * the prediction, refund an over-prediction at the end (the artifact's length-prediction variant).
     * false: charge the prompt at admission and every completion token as it streams (the paper's base VTC).
     */
    predictive: Type.Boolean({ default: true }),
  },
  {
    additionalProperties: false,
    // Nothing would ever be charged: every counter stays equal and VTC degenerates to arrival order.
    crossField: [when({ wIn: 0 }, { wOut: { type: 'number', exclusiveMinimum: 0 } })],
  },
)

export type VtcOptions = Readonly<Static<typeof vtcOptionsSchema>>

export const VTC_DEFAULTS: VtcOptions = Object.freeze({ wIn: DEFAULT_W_IN, wOut: DEFAULT_W_OUT, predictive: true })

export const parseVtcOptions = createOptionsParser(vtcOptionsSchema)

/** What the service-difference bound depends on; all token figures are per request unless noted. */
export interface VtcBoundInput {
  readonly wIn: number
  readonly wOut: number
  /** Largest prompt a request can have (tokens). */
  readonly maxPromptTokens: number
  /** Largest predicted completion charged at admission (tokens; ≤ the largest max_tokens). */
  readonly maxPredictedOutputTokens: number
  /** KV capacity of all backends in tokens: nobody can have more output reserved in flight than this. */
  readonly kvCapacityTokens: number
  /** Smallest user weight among the users compared. */
  readonly minWeight: number
  /** Predictions were exact (the workload's outputs equal the predicted length): no overrun or refund slack. */
  readonly exactPredictions: boolean
}

/**
 * The bound on |W_f − W_g| for kvgate's predictive VTC, where W_u is u's weighted service
 * (w_in × prompt tokens admitted + w_out × completion tokens streamed) / weight_u, measured over any
 * interval during which f and g are both continuously backlogged and the dispatcher admits in the
 * policy's order (no head-of-line bypass). Derivation (docs/policies.md has it in full):
 *
 *   counter_u(t) − counter_u(t0) = W_u(t) + P_u(t) − P_u(t0), where P_u is u's committed-but-unstreamed
 *   output (w_out × Σ max(0, predicted − streamed) over its running requests, / weight_u),
 *   0 ≤ P_u ≤ w_out × M / w_min since running reservations fit in the KV cache (M tokens);
 *   and |counter_f − counter_g| ≤ U = (w_in × L_in + w_out × L_pred) / w_min, because a user is charged
 *   only when its counter is the smallest, by at most U; overruns and refunds move a counter outside
 *   selection by at most w_out × M / w_min more.
 *
 *   => |W_f − W_g| ≤ 2·U + 2·w_out·M / w_min            (exact predictions)
 *      |W_f − W_g| ≤ 2·U + 4·w_out·M / w_min            (otherwise)
 *
 * The bound does not grow with time; FIFO's difference grows linearly with the rate difference.
 */
export function vtcServiceBound(input: VtcBoundInput): number {
  const perRequest = (input.wIn * input.maxPromptTokens + input.wOut * input.maxPredictedOutputTokens) / input.minWeight
  const inFlight = (input.wOut * input.kvCapacityTokens) / input.minWeight
  return 2 * perRequest + (input.exactPredictions ? 2 : 4) * inFlight
}

interface Running {
  readonly user: string
  readonly weight: number
  /** Completion tokens charged so far: the prediction (predictive) or what streamed (base). */
  chargedOutput: number
  streamed: number
}

/**
 * Virtual Token Counter (Sheng et al., OSDI 2024): among users with waiting requests, the one with the
 * smallest counter goes next; a user's counter grows with the weighted service it receives; a user whose
 * queue goes from empty to non-empty is lifted to max(own, smallest counter among other backlogged users),
 * so idleness earns no credit. When no other user is backlogged the lift uses the counter the last
 * backlogged user had when the backlog emptied (the paper's "last left" rule), so a user that was alone
 * cannot bank credit either and a newcomer does not start from 0 against veterans.
 *
 * Ties (equal counters, e.g. a user just lifted to the minimum) go to the user admitted least recently,
 * so a returning light user goes before the heavy user it was lifted to.
 */
export function createVtcPolicy(context: PolicyContext): Policy {
  const options = parseVtcOptions(context.options)
  const { wIn, wOut, predictive } = options
  const backlog = new Backlog()
  const heap = new IndexedMinHeap()
  const counters = new Map<string, number>()
  const weights = new Map<string, number>(context.users.map((u) => [u.name, u.weight]))
  const configured = new Set(weights.keys())
  /** When each user was last admitted (a global sequence), the tie-break. */
  const lastAdmission = new Map<string, number>()
  const running = new Map<string, Running>()
  const runningPerUser = new Map<string, number>()
  let admissions = 0
  let lastLeftCounter = 0
  let lastPruneMs = Number.NEGATIVE_INFINITY

  const weightOf = (request: PolicyRequest): number => {
    const w = request.user.weight
    return Number.isFinite(w) && w > 0 ? w : 1
  }
  const place = (user: string): void => {
    heap.set(user, counters.get(user) ?? 0, lastAdmission.get(user) ?? -1)
  }
  const charge = (user: string, amount: number): void => {
    if (amount === 0) return
    counters.set(user, (counters.get(user) ?? 0) + amount)
    if (heap.has(user)) place(user)
  }
  /** What admitting a request adds to its user's counter. */
  const admissionCharge = (request: PolicyRequest): number =>
    (wIn * request.promptTokens + wOut * (predictive ? Math.max(0, request.predictedOutputTokens) : 0)) /
    weightOf(request)
  /** Σ admission charge of each user's waiting requests, for the wait estimate. */
  const queuedCharge = new Map<string, number>()
  const addQueuedCharge = (user: string, amount: number): void => {
    const next = (queuedCharge.get(user) ?? 0) + amount
    if (backlog.isBacklogged(user)) queuedCharge.set(user, next)
    else queuedCharge.delete(user)
  }
  const leaveQueue = (request: PolicyRequest): boolean => {
    const change = backlog.remove(request.id)
    if (change === undefined) return false
    addQueuedCharge(change.user, -admissionCharge(request))
    if (change.becameIdle) {
      heap.delete(change.user)
      if (heap.size === 0) lastLeftCounter = counters.get(change.user) ?? lastLeftCounter
    }
    return true
  }

  return {
    name: 'vtc',
    onEnqueue(request) {
      const change = backlog.add(request)
      if (change === undefined) return
      weights.set(change.user, weightOf(request))
      addQueuedCharge(change.user, admissionCharge(request))
      if (!change.becameBacklogged) return
      // The lift: the smallest counter among the other backlogged users (the user is not in the heap yet).
      const floor = heap.peek()?.priority ?? lastLeftCounter
      const own = counters.get(change.user)
      counters.set(change.user, own === undefined ? floor : Math.max(own, floor))
      place(change.user)
    },
    onRemove(request) {
      leaveQueue(request)
    },
    onAdmit(request) {
      if (running.has(request.id)) return
      const user = request.user.name
      const weight = weightOf(request)
      const predicted = predictive ? Math.max(0, request.predictedOutputTokens) : 0
      lastAdmission.set(user, admissions++)
      // Charge before leaving the queue, so "last left" records the counter after this admission.
      charge(user, (wIn * request.promptTokens + wOut * predicted) / weight)
      if (heap.has(user)) place(user)
      leaveQueue(request)
      running.set(request.id, { user, weight, chargedOutput: predicted, streamed: 0 })
      runningPerUser.set(user, (runningPerUser.get(user) ?? 0) + 1)
    },
    *candidates() {
      yield* heap.ascending()
    },
    checkQuota: () => ({ allowed: true }),
    /**
     * Smallest counter first: the request goes when its user's counter, lifted as on enqueue and raised by
     * the user's earlier queued requests, is the smallest. Until then each other backlogged user g is served
     * while its counter is below that, so g takes min(its queue, counter gap × its need per counter unit).
     * Running requests' streamed tokens and later arrivals are not foreseen.
     */
    waitAhead(request) {
      const self = request.user.name
      const queued = backlog.has(request.id)
      const own = backlog.ownAhead(request)
      const floor = heap.peek()?.priority ?? lastLeftCounter
      const counter = counters.get(self)
      const lifted = backlog.isBacklogged(self) ? (counter ?? floor) : Math.max(counter ?? floor, floor)
      const ownCharge = (queuedCharge.get(self) ?? 0) - (queued ? admissionCharge(request) : 0)
      const target = lifted + ownCharge
      let ahead = own.need
      for (const name of backlog.backloggedUsers()) {
        if (name === self) continue
        const gap = target - (counters.get(name) ?? floor)
        if (gap < 0) continue
        const need = backlog.userNeed(name)
        const charge = queuedCharge.get(name) ?? 0
        ahead += charge > 0 ? Math.min(need, (gap * need) / charge) : need
      }
      return { tokensAhead: ahead, quotaWaitMs: 0 }
    },
    onTokens(request, tokens) {
      const r = running.get(request.id)
      if (r === undefined || tokens <= 0) return
      r.streamed += tokens
      if (r.streamed > r.chargedOutput) {
        charge(r.user, (wOut * (r.streamed - r.chargedOutput)) / r.weight)
        r.chargedOutput = r.streamed
      }
    },
    onFinish(request, completionTokens) {
      const r = running.get(request.id)
      if (r === undefined) return
      running.delete(request.id)
      const left = (runningPerUser.get(r.user) ?? 1) - 1
      if (left > 0) runningPerUser.set(r.user, left)
      else runningPerUser.delete(r.user)
      // Settle: charge tokens the stream did not report, refund an over-prediction.
      const actual = Math.max(0, completionTokens)
      charge(r.user, (wOut * (actual - r.chargedOutput)) / r.weight)
    },
    onTick(nowMs) {
      if (nowMs - lastPruneMs < PRUNE_EVERY_MS) return
      lastPruneMs = nowMs
      const floor = heap.peek()?.priority ?? lastLeftCounter
      for (const [user, counter] of counters) {
        // An unconfigured user that is idle, has nothing running and sits at or below the floor would be
        // lifted to the floor on return anyway: forgetting it loses (almost) nothing and bounds memory.
        if (!configured.has(user) && !backlog.isBacklogged(user) && !runningPerUser.has(user) && counter <= floor) {
          counters.delete(user)
          weights.delete(user)
          lastAdmission.delete(user)
        }
      }
    },
    rateLimits: () => ({}),
    userStates() {
      const states: PolicyUserState[] = []
      for (const [user, counter] of counters) states.push({ user, weight: weights.get(user) ?? 1, counter })
      return states
    },
  }
}
