import { Backlog, type BacklogChange } from './backlog.js'
import { IndexedMinHeap } from './indexed-heap.js'
import type { PolicyRequest } from './policy.js'

/**
 * Backlogged users ordered by the arrival of their heads: first come, first served across users. fifo,
 * tpm and dynamic-tpm share it; the heap makes each dispatcher decision O(log users) however many
 * requests a user has waiting.
 */
export class HeadOrder {
  readonly backlog = new Backlog()
  readonly #heap = new IndexedMinHeap()

  enqueue(request: PolicyRequest): BacklogChange | undefined {
    const change = this.backlog.add(request)
    // Only a new head changes the order; a request joining behind an existing head does not.
    if (change?.becameBacklogged) this.#place(change)
    return change
  }

  /** The request left the queue (admitted or removed). */
  leave(requestId: string): BacklogChange | undefined {
    const change = this.backlog.remove(requestId)
    if (change === undefined) return undefined
    if (change.becameIdle) this.#heap.delete(change.user)
    else this.#place(change)
    return change
  }

  candidates(): Iterable<string> {
    return this.#heap.ascending()
  }

  #place(change: BacklogChange): void {
    if (change.head === undefined) return
    this.#heap.set(change.user, change.head.enqueuedAtMs, change.headSeq)
  }
}
