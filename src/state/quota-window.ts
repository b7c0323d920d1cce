import type { SharedQuota } from './contracts.js'

/** Quotas count over any 60 seconds, as the policies' own windows do (src/policies/usage-window.ts). */
export const QUOTA_WINDOW_MS = 60_000 // 60 seconds

interface Entry {
  readonly id: string
  readonly atMs: number
  tokens: number
  readonly requests: number
}

/**
 * One user's shared sliding minute in the memory store, the same rules as the redis store's script: an
 * admission charges prompt + predicted and one request, its end charges an overrun as a new entry or refunds
 * an over-prediction from the admission's entry while that is still in the window. A request larger than the
 * whole limit fits only an empty window (else it could never run).
 */
export class SlidingQuota {
  #entries: Entry[] = []

  #expire(nowMs: number): void {
    const cutoff = nowMs - QUOTA_WINDOW_MS
    let drop = 0
    while (drop < this.#entries.length && (this.#entries[drop] as Entry).atMs <= cutoff) drop++
    if (drop > 0) this.#entries = this.#entries.slice(drop)
  }

  usage(nowMs: number): { tokens: number; requests: number } {
    this.#expire(nowMs)
    let tokens = 0
    let requests = 0
    for (const e of this.#entries) {
      tokens += e.tokens
      requests += e.requests
    }
    return { tokens, requests }
  }

  /** 0 when `needTokens` and one request fit now; else ms until they will. */
  msUntilFits(nowMs: number, needTokens: number, limits: SharedQuota): number {
    const { tokens, requests } = this.usage(nowMs)
    let waitMs = 0
    const tpm = limits.tokensPerMinute
    if (tpm !== undefined && needTokens > tpm) {
      const last = this.#entries.at(-1)
      if (last !== undefined) waitMs = last.atMs + QUOTA_WINDOW_MS - nowMs
    } else if (tpm !== undefined) {
      let excess = tokens + needTokens - tpm
      for (const e of this.#entries) {
        if (excess <= 0) break
        excess -= e.tokens
        if (excess <= 0) waitMs = e.atMs + QUOTA_WINDOW_MS - nowMs
      }
    }
    const rpm = limits.requestsPerMinute
    if (rpm !== undefined) {
      let excess = requests + 1 - rpm
      for (const e of this.#entries) {
        if (excess <= 0) break
        excess -= e.requests
        if (excess <= 0) waitMs = Math.max(waitMs, e.atMs + QUOTA_WINDOW_MS - nowMs)
      }
    }
    return waitMs > 0 ? Math.max(1, Math.ceil(waitMs)) : 0
  }

  charge(nowMs: number, id: string, tokens: number, requests: number): void {
    this.#expire(nowMs)
    this.#entries.push({ id, atMs: nowMs, tokens, requests })
  }

  /** At the end: `delta` = actual − predicted completion tokens. */
  settle(nowMs: number, id: string, delta: number): void {
    this.#expire(nowMs)
    if (delta > 0) {
      this.#entries.push({ id: `${id}:over`, atMs: nowMs, tokens: delta, requests: 0 })
      return
    }
    const entry = this.#entries.find((e) => e.id === id)
    if (entry !== undefined) entry.tokens = Math.max(0, entry.tokens + delta)
  }
}
