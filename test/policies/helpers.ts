import type { PolicyRequest, PolicyUser } from '../../src/policies/index.js'

// Whole-workload runs of a policy use the one in-process simulator, test/fairness/harness.ts (runFairness).

/** Build requests with unique ids for a user; `predicted` defaults to the output actually produced later. */
export function createRequestFactory() {
  let next = 0
  return (user: PolicyUser, nowMs: number, promptTokens = 100, predictedOutputTokens = 100): PolicyRequest => ({
    id: `r${next++}`,
    user,
    promptTokens,
    predictedOutputTokens,
    enqueuedAtMs: nowMs,
  })
}

export function take<T>(iterable: Iterable<T>, n = Number.POSITIVE_INFINITY): T[] {
  const out: T[] = []
  if (n <= 0) return out
  for (const item of iterable) {
    out.push(item)
    if (out.length >= n) break
  }
  return out
}
