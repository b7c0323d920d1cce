/** Quotas are per minute: tokens per minute and requests per minute, over a window sliding with the clock. */
export const MINUTE_MS = 60_000 // 60 seconds

/** One charge against a user's window: an admission (tokens + 1 request) or a later overrun (tokens only). */
export interface Charge {
  readonly atMs: number
  tokens: number
  readonly requests: number
  inWindow: boolean
}

/**
 * A sliding-window log of one user's charges over the last minute. Chosen over a token bucket because it
 * states exactly what an operator writes in YAML: "no more than N tokens in any 60 seconds". A bucket
 * refilling at N/60 per second with capacity N would let a user take 2N in a minute (a full bucket, then
 * the refill), which breaks "within 5% of the quota over a minute". The cost is one entry per admission
 * kept for a minute, which is bounded by the request quota or by what the KV cache admits.
 */
export class UsageWindow {
  readonly #windowMs: number
  // A deque as an array and a head index; compacted once the dead prefix is large.
  #charges: Charge[] = []
  #head = 0
  #tokens = 0
  #requests = 0
  /** Bumped when a charge is added or refunded (not when one expires), so callers can cache decisions. */
  version = 0

  constructor(windowMs = MINUTE_MS) {
    this.#windowMs = windowMs
  }

  /** Tokens charged in the window ending now (call `expire` first). */
  get tokens(): number {
    return this.#tokens
  }

  get requests(): number {
    return this.#requests
  }

  /** True when nothing is charged in the window. */
  get empty(): boolean {
    return this.#head >= this.#charges.length
  }

  /** The newest charge's time, if any is in the window. */
  get lastChargeMs(): number | undefined {
    return this.#charges[this.#charges.length - 1]?.atMs
  }

  expire(nowMs: number): void {
    const cutoffMs = nowMs - this.#windowMs
    while (this.#head < this.#charges.length) {
      const charge = this.#charges[this.#head] as Charge
      if (charge.atMs > cutoffMs) break
      charge.inWindow = false
      this.#tokens -= charge.tokens
      this.#requests -= charge.requests
      this.#head++
    }
    if (this.#head > 1024 && this.#head * 2 > this.#charges.length) {
      this.#charges = this.#charges.slice(this.#head)
      this.#head = 0
    }
    // Floating-point refunds can leave dust; an empty window is exactly zero.
    if (this.empty) {
      this.#tokens = 0
      this.#requests = 0
    }
  }

  charge(nowMs: number, tokens: number, requests: number): Charge {
    const charge: Charge = { atMs: nowMs, tokens, requests, inWindow: true }
    this.#charges.push(charge)
    this.#tokens += tokens
    this.#requests += requests
    this.version++
    return charge
  }

  /** Give back up to `tokens` of an earlier charge (a prediction that was too high); no-op once it expired. */
  refund(charge: Charge, tokens: number): void {
    const amount = Math.min(tokens, charge.tokens)
    if (amount <= 0) return
    charge.tokens -= amount
    if (charge.inWindow) this.#tokens -= amount
    this.version++
  }

  /**
   * Milliseconds from now until `needTokens` more fit under `limitTokens`, walking the oldest charges as
   * they leave the window. 0 if they fit now. A request larger than the whole limit fits only in an empty
   * window (otherwise it could never run): the answer is then the time until the window empties.
   */
  msUntilTokensFit(nowMs: number, needTokens: number, limitTokens: number): number {
    if (needTokens > limitTokens) return this.empty ? 0 : this.msUntilEmpty(nowMs)
    let excess = this.#tokens + needTokens - limitTokens
    if (excess <= 0) return 0
    for (let i = this.#head; i < this.#charges.length; i++) {
      const charge = this.#charges[i] as Charge
      excess -= charge.tokens
      if (excess <= 0) return Math.max(1, charge.atMs + this.#windowMs - nowMs)
    }
    return this.msUntilEmpty(nowMs)
  }

  /** Milliseconds from now until `count` more requests (one by default) fit under `limitRequests`. */
  msUntilRequestFits(nowMs: number, limitRequests: number, count = 1): number {
    if (count > limitRequests) return this.msUntilEmpty(nowMs)
    let excess = this.#requests + count - limitRequests
    if (excess <= 0) return 0
    for (let i = this.#head; i < this.#charges.length; i++) {
      const charge = this.#charges[i] as Charge
      excess -= charge.requests
      if (excess <= 0) return Math.max(1, charge.atMs + this.#windowMs - nowMs)
    }
    return this.msUntilEmpty(nowMs)
  }

  /** Milliseconds until every charge now in the window has left it (OpenAI's "reset" time). */
  msUntilEmpty(nowMs: number): number {
    const last = this.lastChargeMs
    return last === undefined || this.empty ? 0 : Math.max(1, last + this.#windowMs - nowMs)
  }

  /** Milliseconds until the oldest request-carrying charge leaves (when one more request frees up). */
  msUntilOldestRequestExpires(nowMs: number): number {
    for (let i = this.#head; i < this.#charges.length; i++) {
      const charge = this.#charges[i] as Charge
      if (charge.requests > 0) return Math.max(1, charge.atMs + this.#windowMs - nowMs)
    }
    return 0
  }
}
