import type { Clock } from '../core/index.js'
import type { KvgateError, RequestOutcome } from '../errors/index.js'
import type { Ledger, Reservation } from '../ledger/index.js'
import type { Policy, PolicyRequest, PolicyUser, RateLimitState } from '../policies/index.js'
import type { BackendCapacity } from '../upstream/index.js'
import type { OvercommitRule, ReserveBy } from './room-rules.js'
import type { NeedBucket } from './wait-calibration.js'
import type { WaitCheck } from './wait-prediction.js'
import type { QueueView, QueueViewOptions } from './queue-view.js'

/**
 * The admission queue's contracts: what a caller submits and gets back, the events it reports, and the seam
 * (`CapacityView`) through which it sees the backends. The parts that implement them:
 *
 *   queue-store.ts      the waiting requests: per-user intrusive lists, need buckets, the deadline heap
 *   capacity-view.ts    which backend, and how much room (most free KV after headroom and the ledger)
 *   dispatcher.ts       the decision loop with the bypass rule
 *   deadline-sweep.ts   the tick that answers 429 to what waited past its deadline, and why
 *   wait-prediction.ts  the drain rate and the predicted wait that retry-after and early rejection use
 *   policy-guard.ts     every call into the policy, with its exceptions contained
 *   admission-events.ts events and contained faults, reported so that no listener can throw into a request
 *   queue-entry.ts      what a ticket must pass to wait, its queue deadline, the item it becomes
 *   admitted.ts         the handle of an admitted request (tokens, finish)
 *   admission-controller.ts  composes them behind `AdmissionController`
 */

export interface AdmissionTicket {
  readonly id: string
  readonly user: PolicyUser
  readonly model: string
  readonly promptTokens: number
  readonly predictedOutputTokens: number
  /** Longest wait in the queue, ms. */
  readonly deadlineMs: number
  /** Aborted when the client goes away: a queued request leaves the queue and rejects with 499. */
  readonly signal?: AbortSignal
  /** What a routing choice may read of the request besides its need (src/routing makes and reads it). */
  readonly routing?: RoutingHints
}

/**
 * A request's routing keys: its prompt's chained KV-block hashes (computed once per block size, on first
 * use, from the gateway's own token ids) and a session id when the client sent one. Opaque to the queue.
 */
export interface RoutingHints {
  /** Hashes of the prompt's full blocks of `blockSize` tokens, each chained on its parent's. */
  blockHashes(blockSize: number): readonly number[]
  readonly sessionId?: string
  /** When the request arrived (the clock's ms): how long it has waited so far, for a router that may hold it. */
  readonly arrivedAtMs: number
}

export interface Admission {
  readonly id: string
  readonly backendId: string
  readonly waitedMs: number
  readonly reservation: Reservation
  /** The request as the admitting policy was charged for it (need may be capped, see the controller). */
  readonly request: PolicyRequest
  readonly finished: boolean
  /** The first token arrived (the backend allocated the prompt's blocks). */
  firstToken(): void
  /** `n` more completion tokens streamed: grows the reservation if needed and charges the policy. */
  recordTokens(n: number): void
  /**
   * Idempotent: releases the reservation and settles the policy now; the dispatcher runs after the caller's
   * own ending (a microtask later), so nothing it does can be mistaken for the finishing request's fault.
   */
  finish(completionTokens: number, reason?: string): void
}

export interface AdmissionEvent {
  readonly kind: 'admitted' | 'rejected' | 'cancelled' | 'finished'
  readonly id: string
  readonly user: string
  readonly model: string
  /** Time spent in the queue (0 for an immediate rejection). */
  readonly waitedMs: number
  /** For rejected and cancelled: the outcome the request ends with (the error's own). */
  readonly outcome?: RequestOutcome
  /** The error code of a rejection or cancellation. */
  readonly reason?: string
  readonly backendId?: string
  /** The predicted wait a rejection's retry-after came from. */
  readonly retryAfterMs?: number
}

/** An exception from a collaborator, caught so that no request is left half-admitted. */
export interface AdmissionFault {
  readonly component: 'policy' | 'listener'
  /** The method that threw: `onAdmit`, `onFinish`, `candidates`, `onEvent`, … */
  readonly operation: string
  /** The request it happened for, when there was one. */
  readonly requestId?: string
  readonly error: unknown
}

export interface QueuedInfo {
  readonly id: string
  readonly user: string
  readonly model: string
  readonly promptTokens: number
  readonly predictedOutputTokens: number
  readonly needTokens: number
  readonly waitedMs: number
  /** Time left until the deadline tick rejects it. */
  readonly deadlineInMs: number
  /** How long the dispatcher has been admitting others past it (null if never bypassed). */
  readonly bypassedForMs: number | null
  /** Its quota held it back at the last dispatch. */
  readonly quotaBlocked: boolean
}

export interface AdmissionStats {
  readonly queueDepth: number
  readonly queuedTokens: number
  readonly activeUsers: number
  /** Tokens of need admitted per second of backlog (undefined until measured). */
  readonly drainTokensPerSecond: number | undefined
  /** Per need bucket, what raw wait predictions are scaled by: retry-after's median, early rejection's low. */
  readonly waitFactors: readonly { readonly bucket: NeedBucket; readonly median: number; readonly low: number }[]
  /** Expected ms from admission to the first token for a prompt of 1,000 tokens (undefined until fitted). */
  readonly ttftAfterAdmissionMs: number | undefined
}

export interface AdmissionController {
  /** Resolves when admitted; rejects with a KvgateError (429, 503, 400, 499, or 500 for a policy bug). */
  submit(ticket: AdmissionTicket): Promise<Admission>
  /** Try to admit queued heads now (the gateway calls it after every metrics poll). */
  dispatch(): void
  /** Reload: queued requests move to the new policy in arrival order; admitted ones settle with the old. */
  setPolicy(policy: Policy): void
  /**
   * Reload admission tuning in place: queued requests keep their place and their deadlines (a new default
   * deadline applies to new requests, which the caller sets per ticket). A shorter queue bound rejects no one
   * already queued; it refuses new requests until the queue is below it.
   */
  configure(tuning: Partial<AdmissionTuning>): void
  queueDepth(): number
  queued(): QueuedInfo[]
  /** The queue per user, bounded, with the reason each shown request waits (`/debug/queue`). */
  queueView(options: QueueViewOptions): QueueView
  stats(): AdmissionStats
  /** The wait a new request of `needTokens` from `user` would see now, ms (what retry-after is made of). */
  predictWaitMs(user: PolicyUser, needTokens: number): number
  /** The user's quota state now (`x-ratelimit-*`), empty for a policy without quotas or a user without one. */
  rateLimits(user: PolicyUser): RateLimitState
  /** Reject everything queued with shutting_down and stop the tick; later submits are refused the same way. */
  close(): void
}

/** The options a reload may change in place (`configure`). */
export interface AdmissionTuning {
  /** Share of each backend's capacity kept free (block rounding, requests kvgate does not see). */
  readonly headroomRatio: number
  readonly deadlineTickMs: number
  readonly maxQueueLength: number
  /** Reject at once when the predicted wait already exceeds the request's deadline. */
  readonly earlyReject: boolean
  /** Longest a head that does not fit may be bypassed by others that do; 0 = strict head-of-line. */
  readonly maxBypassMs: number
  /** How reservations count against a backend's room: their final sizes, or the running set's peak. */
  readonly reserveBy: ReserveBy
  /** A bounded share of reserved growth lent while the backend's own queue is short (ratio 0 = none). */
  readonly overcommit: OvercommitRule
  /**
   * Admit against a time-to-first-token SLO (ms) rather than a bare queue deadline: each request's deadline
   * becomes the smaller of its own and the SLO less the expected time from admission to its first token, and
   * early rejection turns away at once what cannot meet it. null = off.
   */
  readonly ttftSloMs: number | null
}

/** The tuning a controller is built with; the room rules default to the classic final-size rule. */
export interface AdmissionControllerOptions
  extends Omit<AdmissionTuning, 'reserveBy' | 'overcommit' | 'ttftSloMs'>,
    Partial<Pick<AdmissionTuning, 'reserveBy' | 'overcommit' | 'ttftSloMs'>> {
  clock: Clock
  policy: Policy
  ledger: Ledger
  /** Current capacity and polled usage per backend; called once per decision, keep it cheap. */
  backends: () => readonly BackendCapacity[]
  /** Which backend, and how much room; by default the backend with the most room (`createMostRoomView`). */
  capacity?: CapacityView
  /** A ledger shared with other replicas confirms each admission there first (src/state); none = decided here. */
  confirmer?: AdmissionConfirmer
  onEvent?: (event: AdmissionEvent) => void
  /** A policy or listener threw (contained); by default a process warning. */
  onFault?: (fault: AdmissionFault) => void
  /** A predicted wait checked against what happened (admitted, expired, or a shadowed early rejection). */
  onWaitCheck?: (check: WaitCheck) => void
}

/**
 * Which backend, and how much room: the dispatcher's one view of the backends. The default picks the usable
 * backend with the most room after headroom and the ledger; a routing choice (a model's pool, prefix
 * affinity) or a ledger shared between replicas plugs in here without the queue noticing.
 */
export interface CapacityView {
  /** The backends as they are now; undefined when none is usable. Taken once per decision: keep it cheap. */
  snapshot(): CapacitySnapshot | undefined
  /** KV usable on all usable backends after headroom (the cold-start guess of how fast the queue turns over). */
  usableTokens(): number
  /** The request was admitted where `placement` says (a routing choice learns from it). */
  onAdmitted?(ticket: AdmissionTicket, placement: Placement): void
  /** An admitted request ended (its reservation was released). */
  onFinished?(ticket: AdmissionTicket): void
}

export interface CapacitySnapshot {
  /** Where a request of `needTokens` goes now, or undefined when it fits on no usable backend now. */
  place(needTokens: number, ticket: AdmissionTicket): Placement | undefined
  /** The most room on any one usable backend: a need above it fits nowhere now. */
  readonly maxRoomTokens: number
  /** Largest capacity × (1 − headroom) among usable backends: the most a request can need and fit now. */
  readonly maxUsableTokens: number
  /** The same among all backends with a known capacity, usable or not: the most a request can ever need. */
  readonly maxKnownTokens: number
  /** Room summed over usable backends (negative rooms count as 0): what the queue can take now, anywhere. */
  readonly totalRoomTokens: number
  /**
   * `maxUsableTokens` and `maxKnownTokens` among the backends that may serve this request (its model's
   * pool); undefined when none of them is usable. Without it the figures above hold for every request.
   */
  limitsFor?(ticket: AdmissionTicket): CapacityLimits | undefined
}

export interface CapacityLimits {
  readonly maxUsableTokens: number
  readonly maxKnownTokens: number
}

/** What a shared ledger is asked to confirm: a reservation just made on the local ledger, and for whom. */
export interface ConfirmRequest {
  readonly reservation: Reservation
  readonly request: PolicyRequest
  readonly placement: Placement
  /** The policy in force (a shared fairness gate applies to `vtc`), and the user's limits under it now. */
  readonly policyName: string
  readonly limits: RateLimitState
}

export type ConfirmVerdict =
  | { readonly confirmed: true }
  | {
      readonly confirmed: false
      /** A shared quota refused it: try again after this long (else: after the next wake-up). */
      readonly retryAfterMs?: number
      /** Which shared quota, for the 429 a deadline may end it with. */
      readonly quotaReason?: string
    }

/**
 * Several replicas decide against their own cached view of one shared ledger, so the view may be a moment
 * old: each admission is confirmed where the shared state lives (an atomic re-check) before the request's
 * promise resolves. While it is being confirmed the item stays at the head of its user's queue (its user's
 * later requests wait behind it, other users go on); a refusal leaves it there, to be tried again at the next
 * wake-up (`epoch()` moves: a release anywhere, a poll), so nothing is admitted twice and nothing is lost.
 */
export interface AdmissionConfirmer {
  /** undefined: nothing to confirm, admit now (e.g. degraded mode); else the verdict, later. */
  confirm(request: ConfirmRequest): Promise<ConfirmVerdict> | undefined
  /** Moves whenever a refused verdict may have changed. */
  epoch(): number
  /** The user's queue head here needs `needTokens` now (undefined: the queue emptied), for a shared fairness gate. */
  noteHead(user: PolicyUser, needTokens: number | undefined): void
}

export interface Placement {
  readonly backendId: string
  readonly roomTokens: number
  /**
   * Prompt tokens the backend will not allocate again because requests running there hold the same KV
   * blocks (a shared prefix): the reservation leaves them out. 0 or absent by default.
   */
  readonly sharedPromptTokens?: number
}

/** How a queue item leaves the queue; the controller implements it, the dispatcher and the sweep call it. */
export interface ItemEndings<Item> {
  /** Admit it to the placement's backend (or reject it with 500 if the policy fails while charging it). */
  admit(item: Item, placement: Placement, now: number): void
  /** Take it out of the queue (the policy forgets it) and reject it with `error`. */
  reject(item: Item, error: KvgateError, now: number, retryAfterMs?: number): void
}
