import type { Policy, PolicyRequest, PolicyUser, QuotaDecision, RateLimitState, WaitAhead } from '../policies/index.js'

/** Reports a policy method that threw: which one, and for which request. */
export type PolicyFaultReporter = (operation: string, error: unknown, requestId?: string) => void

/**
 * Every call the admission queue makes into a policy, with the policy's exceptions contained. A policy is
 * plugged in by name and may be one an operator wrote; its bug must not leave a request half-admitted (a
 * reservation nobody releases, a promise nobody settles) or end a finished request as something it was not.
 * So each call reports what it caught and tells the caller it failed, and the caller decides what that
 * means for the request at hand (the controller answers it 500 `internal_error`).
 *
 * `candidates()` is lazy (a generator), so its exceptions surface while the dispatcher iterates; the
 * dispatcher catches those itself around its loop and reports them through `report`.
 */
export class PolicyGuard {
  readonly policy: Policy
  readonly #report: PolicyFaultReporter

  constructor(policy: Policy, report: PolicyFaultReporter) {
    this.policy = policy
    this.#report = report
  }

  report(operation: string, error: unknown, requestId?: string): void {
    this.#report(operation, error, requestId)
  }

  /** False when the policy threw: it may not know the request, which must then not stay queued. */
  onEnqueue(request: PolicyRequest, nowMs: number): boolean {
    try {
      this.policy.onEnqueue(request, nowMs)
      return true
    } catch (err) {
      this.#report('onEnqueue', err, request.id)
      return false
    }
  }

  onRemove(request: PolicyRequest, nowMs: number): void {
    try {
      this.policy.onRemove(request, nowMs)
    } catch (err) {
      this.#report('onRemove', err, request.id)
    }
  }

  /** Undefined when the policy threw. */
  checkQuota(request: PolicyRequest, nowMs: number): QuotaDecision | undefined {
    try {
      return this.policy.checkQuota(request, nowMs)
    } catch (err) {
      this.#report('checkQuota', err, request.id)
      return undefined
    }
  }

  /** False when the policy threw while charging the admission. */
  onAdmit(request: PolicyRequest, nowMs: number): boolean {
    try {
      this.policy.onAdmit(request, nowMs)
      return true
    } catch (err) {
      this.#report('onAdmit', err, request.id)
      return false
    }
  }

  onTokens(request: PolicyRequest, tokens: number, nowMs: number): void {
    try {
      this.policy.onTokens(request, tokens, nowMs)
    } catch (err) {
      this.#report('onTokens', err, request.id)
    }
  }

  onFinish(request: PolicyRequest, completionTokens: number, nowMs: number): void {
    try {
      this.policy.onFinish(request, completionTokens, nowMs)
    } catch (err) {
      this.#report('onFinish', err, request.id)
    }
  }

  /** Undefined when the policy threw (the caller falls back to everything queued being ahead). */
  waitAhead(request: PolicyRequest, nowMs: number): WaitAhead | undefined {
    try {
      return this.policy.waitAhead(request, nowMs)
    } catch (err) {
      this.#report('waitAhead', err, request.id)
      return undefined
    }
  }

  /** No `x-ratelimit-*` headers rather than no answer when the policy cannot say. */
  rateLimits(user: PolicyUser, nowMs: number): RateLimitState {
    try {
      return this.policy.rateLimits(user, nowMs)
    } catch (err) {
      this.#report('rateLimits', err)
      return {}
    }
  }
}
