import { Type } from 'typebox'
import { needOf } from './backlog.js'
import { HeadOrder } from './head-order.js'
import { createOptionsParser } from './options.js'
import type { Policy, PolicyContext, PolicyRequest } from './policy.js'

// fifo has no knobs; the empty schema still rejects unknown options so a typo is not silently ignored.
export const fifoOptionsSchema = Type.Unsafe<Record<string, never>>(Type.Object({}, { additionalProperties: false }))
const parseOptions = createOptionsParser(fifoOptionsSchema)

/**
 * First come, first served across all users: the user whose head arrived first goes first. No quotas and
 * no fairness; the baseline every other policy is compared against.
 */
export function createFifoPolicy(context: PolicyContext): Policy {
  parseOptions(context.options)
  const order = new HeadOrder()
  const leave = (request: PolicyRequest): void => {
    order.leave(request.id)
  }

  return {
    name: 'fifo',
    onEnqueue(request) {
      order.enqueue(request)
    },
    onRemove: leave,
    onAdmit: leave,
    candidates: (nowMs) => order.candidates(nowMs),
    checkQuota: () => ({ allowed: true }),
    onTokens() {},
    onFinish() {},
    onTick() {},
    // First come, first served: everything queued goes before a request that joins now.
    waitAhead: (request) => ({
      tokensAhead: order.backlog.totalNeed - (order.backlog.has(request.id) ? needOf(request) : 0),
      quotaWaitMs: 0,
    }),
    rateLimits: () => ({}),
    userStates: () => [],
  }
}
