import type { RoutingHints } from '../admission/index.js'

/**
 * The routing contract: which backend of a model's pool an admitted request goes to. The capacity view
 * (fleet-view.ts) hands a router the pool's candidates — usable, not draining, serving the request's model —
 * with their room after headroom and the ledger, and the router picks one where the request fits, or none
 * (the request waits; the next decision asks again). The admission check is therefore made against the
 * chosen backend. Implementations are registered by name in `./index.ts`, picked by `routing.name` in YAML,
 * and run the shared contract suite in `test/routing/router-contract.test.ts`.
 *
 * All times are the injected clock's milliseconds; a router keeps no timers of its own.
 */
export interface RouteCandidate {
  readonly backendId: string
  readonly capacityTokens: number
  /** `capacity − used − headroom − ledger outstanding`: what a new reservation may take (may be negative). */
  readonly roomTokens: number
  /** The backend's own queue and batch at the last poll. */
  readonly waiting: number
  readonly running: number
  /** Tokens per KV block (vLLM's default 16 until the backend's cache_config_info says). */
  readonly blockSize: number
}

export interface RouteRequest {
  readonly id: string
  readonly model: string
  readonly promptTokens: number
  /** Prompt + predicted output, what the reservation will hold. */
  readonly needTokens: number
  readonly hints: RoutingHints | undefined
  /** How long it has waited for admission so far (0 on its first decision). */
  readonly waitedMs: number
}

/** Why a backend was chosen: a fixed list, used as a metric label. */
export const ROUTE_REASONS = ['most-room', 'round-robin', 'affinity', 'session', 'score'] as const
export type RouteReason = (typeof ROUTE_REASONS)[number]

export interface RouteChoice {
  readonly backendId: string
  readonly reason: RouteReason
  /**
   * Prompt tokens the backend will not allocate again: the leading blocks requests running there hold
   * already (vLLM counts only blocks nobody holds as new). The need on this backend is `need − sharedTokens`,
   * and a router only returns a choice where that fits the candidate's room.
   */
  readonly sharedTokens: number
  /** Prompt tokens the router expects to find in the backend's prefix cache (for metrics and logs). */
  readonly expectedHitTokens: number
}

export interface RouterStats {
  /** Chained block hashes remembered per backend (prefix-aware), for the gauge and /debug. */
  readonly indexBlocks?: Readonly<Record<string, number>>
  readonly sessions?: number
}

export interface Router {
  readonly name: string
  /**
   * Pick one of `candidates` (never empty) where `request.needTokens − sharedTokens ≤ roomTokens`, or
   * undefined to let the request wait. Called on every decision the request takes part in, so keep it cheap;
   * it must not assume the request will be admitted (the policy may refuse it), and keeps nothing per
   * request until `onAdmitted`.
   */
  choose(request: RouteRequest, candidates: readonly RouteCandidate[], nowMs: number): RouteChoice | undefined
  /** The request was admitted where `choice` says. */
  onAdmitted(request: RouteRequest, choice: RouteChoice, nowMs: number): void
  /** An admitted request ended (its KV blocks go back to the backend's free list, where they stay cached). */
  onFinished(requestId: string, nowMs: number): void
  /** The backend's cache may be gone (it went down, or restarted): forget what it was thought to hold. */
  onBackendReset(backendId: string): void
  stats(): RouterStats
}

/** Options every router factory receives: its own `routing.options`, already validated by its schema. */
export interface RouterContext {
  readonly options: Readonly<Record<string, unknown>>
}

export type RouterFactory = (context: RouterContext) => Router

/** Whether `candidate` can take `request` now, `shared` prompt tokens of it being held there already. */
export function fits(request: RouteRequest, candidate: RouteCandidate, shared = 0): boolean {
  return request.needTokens - shared <= candidate.roomTokens
}
