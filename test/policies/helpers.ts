import type { PolicyRequest, PolicyUser } from '../../src/policies/index.js'

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

/** Jain's fairness index of per-user (weight-normalised) service: 1 = perfectly even, 1/n = one user has all. */
export function jainIndex(values: readonly number[]): number {
  const sum = values.reduce((a, b) => a + b, 0)
  const squares = values.reduce((a, b) => a + b * b, 0)
  return squares === 0 ? 1 : (sum * sum) / (values.length * squares)
}
