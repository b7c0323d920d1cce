import { type Static, Type } from 'typebox'
import { createRouterOptionsParser } from './options.js'
import { PrefixIndex } from './prefix-index.js'
import {
  fits,
  type RouteCandidate,
  type RouteChoice,
  type RouteRequest,
  type Router,
  type RouterContext,
} from './router.js'

export const DEFAULT_AFFINITY_MAX_LOAD_GAP = 0.5 // 50 points of KV load (used + reserved) above the least loaded replica
export const DEFAULT_AFFINITY_WAIT_MS = 0 // ms: by default a request never waits for its replica (docs/routing.md)
export const DEFAULT_MIN_HIT_BLOCKS = 2 // 2 blocks (32 tokens at block size 16) make a claim
export const DEFAULT_HIT_WEIGHT = 1
export const DEFAULT_ROOM_WEIGHT = 1
export const DEFAULT_QUEUE_WEIGHT = 0.5
export const DEFAULT_MAX_BLOCKS_PER_BACKEND = 262_144 // 4M tokens at block size 16; about 20 MB per backend
export const DEFAULT_ENTRY_TTL_MS = 600_000 // 10 minutes untouched: taken for evicted whatever the LRU says
export const DEFAULT_SESSION_HEADER = 'x-session-id'
export const DEFAULT_MAX_SESSIONS = 100_000 // sessions remembered (least recently admitted forgotten first)

export const prefixAwareOptionsSchema = Type.Object(
  {
    /**
     * The replica that caches a prompt's prefix (or its session's replica) keeps its claim while its KV load
     * (used + reserved + headroom, as a share of capacity) is at most this far above the least loaded
     * candidate's; beyond, the request is scored with the others as if it had no claim.
     */
    affinityMaxLoadGap: Type.Number({ minimum: 0, maximum: 1, default: DEFAULT_AFFINITY_MAX_LOAD_GAP }),
    /** A request whose claimed replica has no room now waits for it this long before going elsewhere (0: never). */
    affinityWaitMs: Type.Integer({ minimum: 0, default: DEFAULT_AFFINITY_WAIT_MS }),
    /** Leading blocks a replica must be thought to cache before it has a claim. */
    minHitBlocks: Type.Integer({ minimum: 1, default: DEFAULT_MIN_HIT_BLOCKS }),
    /** Score = hitWeight·hit share + roomWeight·room share − queueWeight·queued share (see docs/routing.md). */
    hitWeight: Type.Number({ minimum: 0, default: DEFAULT_HIT_WEIGHT }),
    roomWeight: Type.Number({ minimum: 0, default: DEFAULT_ROOM_WEIGHT }),
    queueWeight: Type.Number({ minimum: 0, default: DEFAULT_QUEUE_WEIGHT }),
    /**
     * Leave out of the need the prompt's leading blocks that requests running on the chosen replica hold
     * already (vLLM does not allocate them again). False: every prompt token is reserved.
     */
    uncachedNeed: Type.Boolean({ default: true }),
    /** Index bound per backend; the backend's own block count bounds it first. */
    maxBlocksPerBackend: Type.Integer({ minimum: 1, default: DEFAULT_MAX_BLOCKS_PER_BACKEND }),
    entryTtlMs: Type.Integer({ minimum: 1, default: DEFAULT_ENTRY_TTL_MS }),
    /** Keep a session (the header below) on the replica its last request went to, as a prefix claim is kept. */
    sessionAffinity: Type.Boolean({ default: false }),
    sessionHeader: Type.String({ pattern: '^[a-z0-9-]+$', default: DEFAULT_SESSION_HEADER }),
    maxSessions: Type.Integer({ minimum: 1, default: DEFAULT_MAX_SESSIONS }),
  },
  { additionalProperties: false },
)

export type PrefixAwareOptions = Readonly<Static<typeof prefixAwareOptionsSchema>>
export const parsePrefixAwareOptions = createRouterOptionsParser(prefixAwareOptionsSchema)

interface AdmittedEntry {
  readonly backendId: string
  readonly hashes: readonly number[]
}

interface Scored {
  readonly candidate: RouteCandidate
  readonly hashes: readonly number[]
  /** Leading blocks thought cached there. */
  readonly cachedBlocks: number
  readonly load: number
}

const shareOf = (part: number, whole: number): number => (whole > 0 ? part / whole : 0)

/**
 * Prefix-cache-aware routing: a conversation's next turn goes back to the replica that still caches its
 * history, unless that replica is much fuller than the others; other requests go where a score of expected
 * hit, room and queue is highest. docs/routing.md has the rules with their knobs, and the measurements.
 */
export function createPrefixAwareRouter(context: RouterContext): Router {
  const options = parsePrefixAwareOptions(context.options)
  const index = new PrefixIndex({ maxBlocksPerBackend: options.maxBlocksPerBackend, ttlMs: options.entryTtlMs })
  const admitted = new Map<string, AdmittedEntry>()
  /** session id → backend, in LRU order. */
  const sessions = new Map<string, string>()
  /** Each backend's block size and cache size in blocks (the index's LRU bound), as last seen among candidates. */
  const geometry = new Map<string, { blockSize: number; capacityBlocks: number }>()

  const scoreOf = (s: Scored, request: RouteRequest): number => {
    const { candidate } = s
    const hit = Math.min(1, shareOf(s.cachedBlocks * candidate.blockSize, request.promptTokens))
    const queued = candidate.waiting / (candidate.waiting + candidate.running + 1)
    return (
      options.hitWeight * hit +
      options.roomWeight * shareOf(candidate.roomTokens, candidate.capacityTokens) -
      options.queueWeight * queued
    )
  }

  const sharedTokens = (s: Scored): number =>
    options.uncachedNeed ? index.heldBlocks(s.candidate.backendId, s.hashes) * s.candidate.blockSize : 0

  const choice = (s: Scored, request: RouteRequest, reason: RouteChoice['reason'], shared: number): RouteChoice => ({
    backendId: s.candidate.backendId,
    reason,
    sharedTokens: Math.min(request.promptTokens, shared),
    expectedHitTokens: Math.min(request.promptTokens, s.cachedBlocks * s.candidate.blockSize),
  })

  /** The candidate with the best score among those the request fits, or undefined. */
  const bestFitting = (scored: readonly Scored[], request: RouteRequest): RouteChoice | undefined => {
    let best: { s: Scored; score: number; shared: number } | undefined
    for (const s of scored) {
      const shared = sharedTokens(s)
      if (!fits(request, s.candidate, shared)) continue
      const score = scoreOf(s, request)
      if (best === undefined || score > best.score) best = { s, score, shared }
    }
    return best === undefined ? undefined : choice(best.s, request, 'score', best.shared)
  }

  return {
    name: 'prefix-aware',
    choose(request, candidates, nowMs) {
      const scored: Scored[] = candidates.map((candidate) => {
        geometry.set(candidate.backendId, {
          blockSize: candidate.blockSize,
          capacityBlocks: candidate.capacityTokens / candidate.blockSize,
        })
        const hashes = request.hints?.blockHashes(candidate.blockSize) ?? []
        return {
          candidate,
          hashes,
          cachedBlocks: index.cachedBlocks(candidate.backendId, hashes, nowMs),
          load: 1 - shareOf(candidate.roomTokens, candidate.capacityTokens),
        }
      })
      // The claim: the session's replica if it is one of the candidates, else the one caching the most.
      let claim: Scored | undefined
      let reason: 'session' | 'affinity' = 'affinity'
      const sessionId = options.sessionAffinity ? request.hints?.sessionId : undefined
      const sessionBackend = sessionId === undefined ? undefined : sessions.get(sessionId)
      if (sessionBackend !== undefined) {
        claim = scored.find((s) => s.candidate.backendId === sessionBackend)
        reason = 'session'
      }
      if (claim === undefined) {
        reason = 'affinity'
        for (const s of scored) {
          if (s.cachedBlocks < options.minHitBlocks) continue
          if (
            claim === undefined ||
            s.cachedBlocks > claim.cachedBlocks ||
            (s.cachedBlocks === claim.cachedBlocks && s.candidate.roomTokens > claim.candidate.roomTokens)
          ) {
            claim = s
          }
        }
      }
      if (claim === undefined) return bestFitting(scored, request)

      const minLoad = Math.min(...scored.map((s) => s.load))
      if (claim.load - minLoad <= options.affinityMaxLoadGap) {
        const shared = sharedTokens(claim)
        if (fits(request, claim.candidate, shared)) return choice(claim, request, reason, shared)
        // Its replica will have room soon (something there finishes): a short wait beats recomputing the prefix.
        if (request.waitedMs < options.affinityWaitMs) return undefined
      }
      // The claim is lost (too full, or waited long enough): the others first, the claimed replica only if
      // nothing else takes the request now.
      const held = claim
      return (
        bestFitting(
          scored.filter((s) => s !== held),
          request,
        ) ?? bestFitting([held], request)
      )
    },
    onAdmitted(request, chosen, nowMs) {
      const shape = geometry.get(chosen.backendId)
      // A choice always follows a choose() that saw the backend; without one there is nothing to learn.
      if (shape === undefined) return
      const hashes = request.hints?.blockHashes(shape.blockSize) ?? []
      index.touch(chosen.backendId, hashes, shape.capacityBlocks, nowMs)
      index.hold(chosen.backendId, hashes)
      admitted.set(request.id, { backendId: chosen.backendId, hashes })
      const sessionId = request.hints?.sessionId
      if (options.sessionAffinity && sessionId !== undefined) {
        sessions.delete(sessionId)
        sessions.set(sessionId, chosen.backendId)
        if (sessions.size > options.maxSessions) sessions.delete(sessions.keys().next().value as string)
      }
    },
    onFinished(requestId, nowMs) {
      const entry = admitted.get(requestId)
      if (entry === undefined) return
      admitted.delete(requestId)
      index.release(entry.backendId, entry.hashes)
      // Freed blocks go to the tail of vLLM's free list: the most recently used, the last to be evicted.
      const blocks = geometry.get(entry.backendId)?.capacityBlocks ?? options.maxBlocksPerBackend
      index.touch(entry.backendId, entry.hashes, blocks, nowMs)
    },
    onBackendReset(backendId) {
      index.reset(backendId)
      for (const [id, backend] of sessions) if (backend === backendId) sessions.delete(id)
    },
    stats: () => ({ indexBlocks: index.sizes(), sessions: sessions.size }),
  }
}
