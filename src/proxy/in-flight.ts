import { errors, KvgateError } from '../errors/index.js'

/**
 * The error a request ends with when shutdown's grace period cut it (the reason `abortAll` was given was
 * `shutting_down`), counted `cancelled_shutdown`; undefined when something else stopped it.
 */
export function shutdownCut(signal: AbortSignal): KvgateError | undefined {
  const reason: unknown = signal.aborted ? signal.reason : undefined
  if (!(reason instanceof KvgateError) || reason.code !== errors.shuttingDown.code) return undefined
  return errors.shuttingDown([], { outcome: 'cancelled_shutdown', captureStack: false })
}

/**
 * The requests being forwarded, so a graceful shutdown can wait for them to end (an event, not a poll) and
 * abort those still running when its grace period is over.
 */
export class InFlight {
  readonly #controllers = new Set<AbortController>()
  #waiters: (() => void)[] = []

  get size(): number {
    return this.#controllers.size
  }

  add(controller: AbortController): void {
    this.#controllers.add(controller)
  }

  delete(controller: AbortController): void {
    if (!this.#controllers.delete(controller) || this.#controllers.size > 0) return
    const waiters = this.#waiters
    this.#waiters = []
    for (const resolve of waiters) resolve()
  }

  /** Resolves once nothing is being forwarded (at once if nothing is). */
  whenEmpty(): Promise<void> {
    if (this.#controllers.size === 0) return Promise.resolve()
    return new Promise((resolve) => this.#waiters.push(resolve))
  }

  /** Abort everything being forwarded; each request ends itself (an error event, its release). */
  abortAll(reason: unknown): void {
    for (const controller of this.#controllers) controller.abort(reason)
  }
}
