import type { Policy, PolicyContext, PolicyRequest } from './policy.js'

/**
 * First come, first served across all users: the user whose head arrived first goes first. No quotas and
 * no fairness; the baseline every other policy is compared against.
 */
export function createFifoPolicy(_context: PolicyContext): Policy {
  // Waiting requests in arrival order; a Map keeps insertion order and deletes in O(1).
  const waiting = new Map<string, string>()

  const leave = (request: PolicyRequest): void => {
    waiting.delete(request.id)
  }

  return {
    name: 'fifo',
    onEnqueue(request) {
      waiting.set(request.id, request.user.name)
    },
    onRemove: leave,
    onAdmit: leave,
    *candidates() {
      // A user's first waiting request is its queue's head, so the order of first appearances is the
      // order of heads by arrival.
      const seen = new Set<string>()
      for (const user of waiting.values()) {
        if (seen.has(user)) continue
        seen.add(user)
        yield user
      }
    },
    checkQuota: () => ({ allowed: true }),
    onTokens() {},
    onFinish() {},
    onTick() {},
    rateLimits: () => ({}),
    userStates: () => [],
  }
}
