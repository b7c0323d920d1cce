import { Type } from 'typebox'
import { HeadOrder } from './head-order.js'
import { createOptionsParser } from './options.js'
import type { Policy, PolicyContext, PolicyUser, PolicyUserState } from './policy.js'
import { QuotaLedger, quotaHooks, quotaWaitAhead, type QuotaLimits } from './quota-ledger.js'

// tpm's limits live on each user (config `users[].tokensPerMinute` / `requestsPerMinute`, and
// `defaultUser`); the policy itself has no knobs, and unknown options are refused.
export const tpmOptionsSchema = Type.Unsafe<Record<string, never>>(Type.Object({}, { additionalProperties: false }))
const parseOptions = createOptionsParser(tpmOptionsSchema)

/** How often windows of users idle for a minute are dropped (ms). */
const PRUNE_EVERY_MS = 10_000 // 10 seconds

/** A user's static quota; a missing, null or non-positive-infinite value means unlimited. */
export function staticLimits(user: PolicyUser): QuotaLimits {
  const finite = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined)
  return { tokensPerMinute: finite(user.tokensPerMinute), requestsPerMinute: finite(user.requestsPerMinute) }
}

/**
 * Static per-user quotas: tokens per minute (prompt + completion) and requests per minute, over a sliding
 * minute. Users are tried in FIFO order of their heads; a user whose head would exceed its quota is
 * skipped (its head waits, and may reach its deadline) while others go ahead. Within quota the KV check
 * decides. The completion is reserved at the predicted length at admission and settled at the end.
 */
export function createTpmPolicy(context: PolicyContext): Policy {
  parseOptions(context.options)
  const order = new HeadOrder()
  const ledger = new QuotaLedger()
  // The latest settings seen per user, for userStates (requests carry their user's settings).
  const known = new Map<string, PolicyUser>(context.users.map((u) => [u.name, u]))
  const configured = new Set(known.keys())
  let lastPruneMs = Number.NEGATIVE_INFINITY

  return {
    name: 'tpm',
    onEnqueue(request) {
      known.set(request.user.name, request.user)
      order.enqueue(request)
    },
    onRemove(request) {
      order.leave(request.id)
    },
    onAdmit(request, nowMs) {
      order.leave(request.id)
      ledger.admit(request, nowMs)
    },
    candidates: (nowMs) => order.candidates(nowMs),
    ...quotaHooks(ledger, order, staticLimits),
    // FIFO among users within quota: the ready users' queues go first, parked ones wait for their quotas.
    waitAhead: quotaWaitAhead(ledger, order, staticLimits, (request, ownNeedAhead) => {
      const user = request.user.name
      const ownQueued = order.isParked(user) ? 0 : order.backlog.userNeed(user)
      return order.backlog.totalNeed - order.parkedNeed() - ownQueued + ownNeedAhead
    }),
    onTick(nowMs) {
      if (nowMs - lastPruneMs < PRUNE_EVERY_MS) return
      lastPruneMs = nowMs
      ledger.prune(nowMs)
    },
    userStates(nowMs) {
      const states: PolicyUserState[] = []
      for (const user of known.values()) {
        const used = ledger.usedTokens(user.name, nowMs)
        // Forget unconfigured users with nothing waiting and nothing charged, so names do not pile up.
        if (!configured.has(user.name) && used === 0 && !order.backlog.isBacklogged(user.name)) {
          known.delete(user.name)
          continue
        }
        const { tokensPerMinute } = staticLimits(user)
        states.push({
          user: user.name,
          weight: user.weight,
          ...(tokensPerMinute === undefined ? {} : { quotaTokensPerMinute: tokensPerMinute }),
          usedTokensLastMinute: used,
        })
      }
      return states
    },
  }
}
