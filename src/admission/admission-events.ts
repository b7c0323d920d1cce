import type { KvgateError } from '../errors/index.js'
import type { Policy } from '../policies/index.js'
import type { AdmissionEvent, AdmissionFault, AdmissionTicket, CapacityView, Placement } from './contracts.js'
import { PolicyGuard } from './policy-guard.js'

/**
 * Where the admission queue tells what happened: events to metrics and logs, faults (a collaborator's
 * exception, contained) to the reporter. Nothing reported here may throw back into the request path.
 */
export class AdmissionReporter {
  readonly #onEvent: ((event: AdmissionEvent) => void) | undefined
  readonly #onFault: (fault: AdmissionFault) => void

  constructor(onEvent: ((event: AdmissionEvent) => void) | undefined, onFault: (fault: AdmissionFault) => void) {
    this.#onEvent = onEvent
    this.#onFault = onFault
  }

  emitEnding(ticket: AdmissionTicket, waitedMs: number, error: KvgateError, retryAfterMs?: number): void {
    this.emit({
      kind: error.outcome === 'cancelled_queued' ? 'cancelled' : 'rejected',
      id: ticket.id,
      user: ticket.user.name,
      model: ticket.model,
      waitedMs,
      outcome: error.outcome,
      reason: error.code,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    })
  }

  /** Events go to metrics and logs after the state change they report; a throwing listener is a fault. */
  emit(event: AdmissionEvent): void {
    if (this.#onEvent === undefined) return
    try {
      this.#onEvent(event)
    } catch (error) {
      this.fault({ component: 'listener', operation: 'onEvent', requestId: event.id, error })
    }
  }

  fault(fault: AdmissionFault): void {
    try {
      this.#onFault(fault)
    } catch {
      // The reporter itself failed: nothing is left to tell, and the request path must go on.
    }
  }

  guard(policy: Policy): PolicyGuard {
    return new PolicyGuard(policy, (operation, error, requestId) =>
      this.fault({ component: 'policy', operation, error, ...(requestId === undefined ? {} : { requestId }) }),
    )
  }

  /** The capacity view learns where requests went and when they ended; its exceptions are contained. */
  notifyCapacity(
    capacity: CapacityView,
    operation: 'onAdmitted' | 'onFinished',
    ticket: AdmissionTicket,
    placement?: Placement,
  ): void {
    try {
      if (operation === 'onAdmitted' && placement !== undefined) capacity.onAdmitted?.(ticket, placement)
      else if (operation === 'onFinished') capacity.onFinished?.(ticket)
    } catch (error) {
      this.fault({ component: 'listener', operation: `capacity.${operation}`, requestId: ticket.id, error })
    }
  }
}

/** Without a reporter, a contained fault still reaches the operator as a process warning. */
export function warnFault(fault: AdmissionFault): void {
  const message = fault.error instanceof Error ? fault.error.message : String(fault.error)
  process.emitWarning(`kvgate admission: ${fault.component} ${fault.operation} threw: ${message}`)
}
