import { type Static, Type } from 'typebox'
import { nullable } from '../core/index.js'
import { HeadOrder } from './head-order.js'
import { createOptionsParser } from './options.js'
import type { Policy, PolicyContext, PolicyRequest, PolicyUser, PolicyUserState } from './policy.js'
import { QuotaLedger, quotaHooks, quotaWaitAhead } from './quota-ledger.js'
import { staticLimits } from './tpm.js'
import { MINUTE_MS } from './usage-window.js'

const DEFAULT_INTERVAL_MS = 1_000 // 1 second between two recomputations
const DEFAULT_HALF_LIFE_MS = 10_000 // 10 seconds
const DEFAULT_PROBE_RATIO = 0.1 // quotas add up to 110% of the measured capacity

export const dynamicTpmOptionsSchema = Type.Object(
  {
    /** How often quotas are recomputed (ms of the injected clock). */
    intervalMs: Type.Number({ minimum: 1, default: DEFAULT_INTERVAL_MS }),
    /** Half-life of the exponential moving average of served tokens per minute (ms); 0 = no smoothing. */
    halfLifeMs: Type.Number({ minimum: 0, default: DEFAULT_HALF_LIFE_MS }),
    /** A user is active if it had a request within this window (ms) or has one waiting; 60 s by default, the
     * same minute the quotas count over. */
    activeWindowMs: Type.Number({ minimum: 1, default: MINUTE_MS }),
    /**
     * Quotas add up to capacity × (1 + probeRatio). Without the margin, quotas would freeze the served rate
     * at its current estimate (users held at their quota serve exactly the estimate, and over-predicted
     * completions even less, so the estimate could only fall); the margin lets demand grow into KV that is
     * free, and the KV check still bounds what is admitted.
     */
    probeRatio: Type.Number({ minimum: 0, maximum: 10, default: DEFAULT_PROBE_RATIO }),
    /** Per-user quota before any capacity is measured; null = unlimited until then. */
    initialTokensPerMinute: nullable(Type.Number({ exclusiveMinimum: 0 }), { default: null }),
    /** No active user's quota goes below this (tokens per minute). */
    minTokensPerMinute: Type.Number({ minimum: 0, default: 0 }),
  },
  { additionalProperties: false },
)

export type DynamicTpmOptions = Readonly<Static<typeof dynamicTpmOptionsSchema>>

export const DYNAMIC_TPM_DEFAULTS: DynamicTpmOptions = Object.freeze({
  intervalMs: DEFAULT_INTERVAL_MS,
  halfLifeMs: DEFAULT_HALF_LIFE_MS,
  activeWindowMs: MINUTE_MS,
  probeRatio: DEFAULT_PROBE_RATIO,
  initialTokensPerMinute: null,
  minTokensPerMinute: 0,
})

export const parseDynamicTpmOptions = createOptionsParser(dynamicTpmOptionsSchema)

export interface WaterFillUser {
  readonly user: string
  readonly weight: number
  /** Tokens per minute the user can use; Infinity for a user with requests waiting. */
  readonly demand: number
}

/**
 * Weighted max-min fair division of `total` (water-filling): users whose demand is below their weighted
 * share get their demand, and what they leave is split among the rest by weight, repeatedly. Returns
 * each user's allocation. O(n log n).
 */
export function waterFill(total: number, users: readonly WaterFillUser[]): Map<string, number> {
  const sorted = [...users].sort((a, b) => a.demand / a.weight - b.demand / b.weight || (a.user < b.user ? -1 : 1))
  const allocation = new Map<string, number>()
  let remaining = total
  let weightLeft = sorted.reduce((sum, u) => sum + u.weight, 0)
  for (const u of sorted) {
    const share = weightLeft > 0 ? (remaining * u.weight) / weightLeft : 0
    const given = Math.min(u.demand, share)
    allocation.set(u.user, given)
    remaining -= given
    weightLeft -= u.weight
  }
  return allocation
}

/**
 * Dynamic TPM: the service kvgate actually delivers (tokens per minute across backends, from `onTick`,
 * smoothed) is divided among the users active now, by weight, and recomputed every `intervalMs`.
 *
 * Work-conserving: by water-filling, share that an active user does not use (its last minute's usage is
 * below its share and nothing of it waits) goes to the users that can use it. Each user's quota is
 * max(its water-filled allocation, its weighted fair share): a light user keeps its guaranteed share (so
 * it can burst back without waiting for a recompute) while the heavy users get what it leaves.
 * A user's static `tokensPerMinute`, if configured, caps its dynamic quota; `requestsPerMinute` holds too.
 *
 * The capacity estimate only moves down while a head waits for KV (then the served rate is the capacity);
 * while heads wait only for their quotas it probes up each interval, and while nothing waits it only rises
 * (see onTick).
 */
export function createDynamicTpmPolicy(context: PolicyContext): Policy {
  const options = parseDynamicTpmOptions(context.options)
  const ledger = new QuotaLedger()
  const users = new Map<string, PolicyUser>(context.users.map((u) => [u.name, u]))
  const configured = new Set(users.keys())
  const lastSeenMs = new Map<string, number>()
  let quotas = new Map<string, number>()
  let activeWeight = 0
  let capacityTokensPerMinute: number | undefined
  let lastTickMs: number | undefined
  let lastRecomputeMs = Number.NEGATIVE_INFINITY
  let dirty = false

  const weightOf = (user: PolicyUser): number => (Number.isFinite(user.weight) && user.weight > 0 ? user.weight : 1)
  const distributable = (): number | undefined =>
    capacityTokensPerMinute === undefined ? undefined : capacityTokensPerMinute * (1 + options.probeRatio)
  const capByStatic = (user: PolicyUser, quota: number): number => {
    const cap = staticLimits(user).tokensPerMinute
    return Math.max(cap === undefined ? quota : Math.min(cap, quota), 0)
  }

  /** The token quota in force for a user now; undefined = unlimited. */
  const quotaFor = (user: PolicyUser): number | undefined => {
    const total = distributable()
    if (total === undefined) {
      const initial = options.initialTokensPerMinute ?? staticLimits(user).tokensPerMinute
      return initial === null || initial === undefined ? undefined : capByStatic(user, initial)
    }
    const known = quotas.get(user.name)
    if (known !== undefined) return known
    // A user that became active since the last recompute: its weighted share counting itself in, until
    // the next tick recomputes everyone (the others give the share back then).
    const w = weightOf(user)
    return capByStatic(user, Math.max(options.minTokensPerMinute, (total * w) / (activeWeight + w)))
  }

  /** What one unit of rank costs a user in tokens: its quota, or its weight while it has none. */
  const rankScale = (user: PolicyUser | undefined): number => {
    const quota = user === undefined ? undefined : quotaFor(user)
    return quota === undefined || quota <= 0 ? (user === undefined ? 1 : weightOf(user)) : quota
  }

  // The clock's latest reading, for ranking between events (the rank reads the sliding window).
  let latestMs = 0
  /**
   * Users are tried in order of how much of their quota the last minute used (least first), not in FIFO
   * order: quotas add up to more than the capacity (the probe margin, and the guaranteed share a light
   * user keeps), so under KV contention it is the order that decides who gets the shortfall, and it
   * should go to whoever is furthest below their share. Ranks refresh on the user's own events and at
   * every recompute, so the sliding window's expiry is reflected within `intervalMs`.
   */
  const order = new HeadOrder((name) => {
    const user = users.get(name)
    const quota = user === undefined ? undefined : quotaFor(user)
    const used = ledger.usedTokens(name, latestMs)
    const weight = user === undefined ? 1 : weightOf(user)
    return quota === undefined || quota <= 0 ? used / weight : used / quota
  })

  const recompute = (nowMs: number): void => {
    lastRecomputeMs = nowMs
    dirty = false
    const cutoffMs = nowMs - options.activeWindowMs
    const active: PolicyUser[] = []
    for (const [name, seenMs] of lastSeenMs) {
      const backlogged = order.backlog.isBacklogged(name)
      if (seenMs <= cutoffMs && !backlogged) {
        lastSeenMs.delete(name)
        if (!configured.has(name)) users.delete(name)
        continue
      }
      const user = users.get(name)
      if (user !== undefined) active.push(user)
    }
    activeWeight = active.reduce((sum, u) => sum + weightOf(u), 0)
    ledger.prune(nowMs)
    const total = distributable()
    if (total === undefined) {
      quotas = new Map()
      order.unparkAll()
      return
    }
    const allocation = waterFill(
      total,
      active.map((u) => ({
        user: u.name,
        weight: weightOf(u),
        demand: order.backlog.isBacklogged(u.name) ? Number.POSITIVE_INFINITY : ledger.usedTokens(u.name, nowMs),
      })),
    )
    const next = new Map<string, number>()
    for (const u of active) {
      const fair = (total * weightOf(u)) / activeWeight
      next.set(u.name, capByStatic(u, Math.max(allocation.get(u.name) ?? 0, fair, options.minTokensPerMinute)))
    }
    quotas = next
    // New quotas: every parked head's wait was computed under the old ones, and every rank moved.
    order.unparkAll()
    order.refreshAll()
  }

  // Dynamic token quota; requestsPerMinute stays the user's static one.
  const limitsOf = (user: PolicyUser) => ({
    tokensPerMinute: quotaFor(user),
    requestsPerMinute: staticLimits(user).requestsPerMinute,
  })
  const quotaGate = quotaHooks(ledger, order, limitsOf)

  /**
   * Ready users go in order of used / quota, least first, and each admission raises its user's rank by
   * need / quota: another user g is served before the request until its rank passes the request's user's
   * rank at the time the request is that user's head, so g takes min(its queue, rank gap × its quota).
   */
  const waitAhead = quotaWaitAhead(ledger, order, limitsOf, (request, ownNeedAhead, nowMs) => {
    const self = request.user.name
    const rank = (ledger.usedTokens(self, nowMs) + ownNeedAhead) / rankScale(request.user)
    let ahead = ownNeedAhead
    for (const name of order.backlog.backloggedUsers()) {
      if (name === self || order.isParked(name)) continue
      const scale = rankScale(users.get(name))
      const gap = rank - ledger.usedTokens(name, nowMs) / scale
      if (gap > 0) ahead += Math.min(order.backlog.userNeed(name), gap * scale)
    }
    return ahead
  })

  const touch = (request: PolicyRequest, atMs: number): void => {
    latestMs = Math.max(latestMs, atMs)
    const name = request.user.name
    users.set(name, request.user)
    if (!lastSeenMs.has(name)) dirty = true
    lastSeenMs.set(name, atMs)
  }

  return {
    name: 'dynamic-tpm',
    onEnqueue(request, nowMs) {
      touch(request, nowMs)
      order.enqueue(request)
    },
    onRemove(request, atMs) {
      latestMs = Math.max(latestMs, atMs)
      order.leave(request.id)
    },
    onAdmit(request, atMs) {
      touch(request, atMs)
      // Charge first, so the user's next head is ranked with this admission counted.
      ledger.admit(request, atMs)
      order.leave(request.id)
      order.refresh(request.user.name)
    },
    candidates(atMs) {
      latestMs = Math.max(latestMs, atMs)
      return order.candidates(atMs)
    },
    ...quotaGate,
    waitAhead,
    onFinish(request, completionTokens, nowMs) {
      quotaGate.onFinish(request, completionTokens, nowMs)
      // The refund lowers the user's usage, and so its rank.
      order.refresh(request.user.name)
    },
    onTick(atMs, sample) {
      latestMs = Math.max(latestMs, atMs)
      const served = sample.servedTokensPerMinute
      const due = atMs - lastRecomputeMs >= options.intervalMs
      // Which regime the backends are in decides what the served rate says about capacity:
      // - a head waits for KV (a ready user is backlogged): the KV is the bottleneck, the served rate *is* the
      //   capacity, and the average follows it both ways;
      // - heads wait, but only for their quotas (every backlogged user is parked): the quotas are the
      //   bottleneck and the served rate understates the capacity. It may only raise the estimate, and each
      //   interval the estimate probes up by the margin (multiplicative increase) until a head waits for KV.
      //   Letting it fall here would spiral: lower quotas, less served, lower quotas;
      // - nothing waits: the served rate measures demand, not capacity; it may only raise the estimate, so a
      //   quiet night does not shrink the morning's quotas.
      const kvBound = order.readyUsers > 0
      const quotaBound = order.backlog.users > 0 && !kvBound
      if (Number.isFinite(served) && served >= 0) {
        if (capacityTokensPerMinute === undefined) {
          if (served > 0) capacityTokensPerMinute = served
        } else if (kvBound || served > capacityTokensPerMinute) {
          const dtMs = lastTickMs === undefined ? options.intervalMs : Math.max(0, atMs - lastTickMs)
          const alpha = options.halfLifeMs === 0 ? 1 : 1 - 2 ** (-dtMs / options.halfLifeMs)
          capacityTokensPerMinute += alpha * (served - capacityTokensPerMinute)
        }
      }
      if (due && quotaBound && capacityTokensPerMinute !== undefined) capacityTokensPerMinute *= 1 + options.probeRatio
      lastTickMs = atMs
      if (dirty || due) recompute(atMs)
    },
    userStates(nowMs) {
      const states: PolicyUserState[] = []
      for (const name of lastSeenMs.keys()) {
        const user = users.get(name)
        if (user === undefined) continue
        const quota = quotaFor(user)
        states.push({
          user: name,
          weight: weightOf(user),
          ...(quota === undefined ? {} : { quotaTokensPerMinute: quota }),
          usedTokensLastMinute: ledger.usedTokens(name, nowMs),
        })
      }
      return states
    },
  }
}
