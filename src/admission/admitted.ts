import type { Reservation } from '../ledger/index.js'
import type { PolicyRequest } from '../policies/index.js'
import type { Admission, AdmissionEvent, AdmissionTicket } from './contracts.js'
import type { PolicyGuard } from './policy-guard.js'

/** What an admitted request needs of the controller that admitted it. */
export interface AdmittedHost {
  nowMs(): number
  /** The first token came `afterAdmissionMs` after admission (the SLO's deadline is derived from these). */
  noteFirstToken(promptTokens: number, afterAdmissionMs: number): void
  emit(event: AdmissionEvent): void
  /** Run the dispatcher after the caller's call stack. */
  scheduleDispatch(): void
  /** The reservation was released (the capacity view forgets the request). */
  released(ticket: AdmissionTicket): void
}

/**
 * The handle of an admitted request: its reservation on the ledger and the policy that charged it. Every
 * ending calls `finish()` (idempotent): the reservation is released and the policy settled at once, the
 * dispatcher runs a microtask later.
 */
export class AdmittedRequest implements Admission {
  readonly id: string
  readonly backendId: string
  readonly waitedMs: number
  readonly reservation: Reservation
  readonly request: PolicyRequest
  readonly #policy: PolicyGuard
  readonly #host: AdmittedHost
  readonly #ticket: AdmissionTicket
  readonly #admittedAtMs: number
  #finished = false
  #sawFirstToken = false

  constructor(
    host: AdmittedHost,
    policy: PolicyGuard,
    ticket: AdmissionTicket,
    request: PolicyRequest,
    placement: { readonly backendId: string; readonly reservation: Reservation; readonly waitedMs: number },
  ) {
    this.#host = host
    this.#policy = policy
    this.id = ticket.id
    this.#ticket = ticket
    this.request = request
    this.backendId = placement.backendId
    this.reservation = placement.reservation
    this.waitedMs = placement.waitedMs
    this.#admittedAtMs = host.nowMs()
  }

  get finished(): boolean {
    return this.#finished
  }

  firstToken(): void {
    this.reservation.markStarted()
    if (this.#sawFirstToken || this.#finished) return
    this.#sawFirstToken = true
    // Per sequence's prompt would be finer; the whole prompt is what prefill had to read.
    this.#host.noteFirstToken(this.request.promptTokens, this.#host.nowMs() - this.#admittedAtMs)
  }

  recordTokens(n: number): void {
    if (this.#finished || !(n > 0)) return
    this.reservation.addGenerated(n)
    this.#policy.onTokens(this.request, n, this.#host.nowMs())
  }

  finish(completionTokens: number, reason = 'finished'): void {
    if (this.#finished) return
    this.#finished = true
    // Release first: whatever the policy does next, the KV is back.
    this.reservation.release(reason)
    this.#host.released(this.#ticket)
    // The policy that charged the admission settles it, even after a reload switched policies: a new
    // policy never saw this request's onAdmit and could not settle a charge it did not make.
    this.#policy.onFinish(this.request, Math.max(0, completionTokens), this.#host.nowMs())
    this.#host.emit({
      kind: 'finished',
      id: this.id,
      user: this.request.user.name,
      model: this.#ticket.model,
      waitedMs: this.waitedMs,
      backendId: this.backendId,
      reason,
    })
    this.#host.scheduleDispatch()
  }
}
