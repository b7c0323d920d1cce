import { Backlog, type BacklogChange } from './backlog.js'
import { IndexedMinHeap } from '../core/index.js'
import type { PolicyRequest } from './policy.js'

/**
 * Backlogged users ordered by the arrival of their heads: first come, first served across users. fifo,
 * tpm and dynamic-tpm share it; the heap makes each dispatcher decision O(log users) however many
 * requests a user has waiting.
 *
 * Quota policies also *park* a user whose head its quota holds back, until the time the quota frees
 * (or until its quota or its head changes). Parked users are still yielded, but after every ready one:
 * the dispatcher tries a bounded number of candidates per decision, and a crowd of over-quota users with
 * the oldest heads must not use up that budget while users within quota wait behind them.
 */
export class HeadOrder {
  readonly backlog = new Backlog()
  readonly #ready = new IndexedMinHeap()
  /** Parked users keyed by the time they may pass again. */
  readonly #parked = new IndexedMinHeap()
  readonly #rank: (user: string, head: PolicyRequest) => number

  /**
   * `rank` orders ready users (smallest first; ties in arrival order of heads). The default is the head's
   * arrival time: FIFO across users. A policy with another rank calls `refresh` when a user's rank changes.
   */
  constructor(rank: (user: string, head: PolicyRequest) => number = (_user, head) => head.enqueuedAtMs) {
    this.#rank = rank
  }

  /** Re-rank one user (its usage or quota changed). */
  refresh(user: string): void {
    if (!this.#ready.has(user)) return
    const head = this.backlog.head(user)
    if (head !== undefined) this.#ready.set(user, this.#rank(user, head.request), head.seq)
  }

  /** Re-rank every ready user: O(users · log users), for a policy's periodic recompute. */
  refreshAll(): void {
    for (const user of this.backlog.backloggedUsers()) this.refresh(user)
  }

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
    if (change.becameIdle) {
      this.#ready.delete(change.user)
      this.#parked.delete(change.user)
    } else {
      // A new head has a new need: whatever held the old one back must be checked again.
      this.#parked.delete(change.user)
      this.#place(change)
    }
    return change
  }

  /** Backlogged users not parked: their heads wait for KV, not for a quota. */
  get readyUsers(): number {
    return this.#ready.size
  }

  /** Whether `user` is parked (its head waits for its quota). */
  isParked(user: string): boolean {
    return this.#parked.has(user)
  }

  /** Σ need of the parked users' queues: O(parked users), for a wait estimate, never per decision. */
  parkedNeed(): number {
    let need = 0
    for (const user of this.#parked.keys()) need += this.backlog.userNeed(user)
    return need
  }

  /** Hold `user` back (after every ready user) until `untilMs`. */
  park(user: string, untilMs: number): void {
    const head = this.backlog.head(user)
    if (head === undefined) return
    this.#ready.delete(user)
    this.#parked.set(user, untilMs, head.seq)
  }

  /** The user's quota changed (a refund, a recomputed dynamic quota): try it again in arrival order. */
  unpark(user: string): void {
    if (!this.#parked.delete(user)) return
    const head = this.backlog.head(user)
    if (head !== undefined) this.#ready.set(user, this.#rank(user, head.request), head.seq)
  }

  unparkAll(): void {
    for (let top = this.#parked.peek(); top !== undefined; top = this.#parked.peek()) this.unpark(top.key)
  }

  *candidates(nowMs: number): Generator<string, void, undefined> {
    for (let top = this.#parked.peek(); top !== undefined && top.priority <= nowMs; top = this.#parked.peek()) {
      this.unpark(top.key)
    }
    // A user parked while the dispatcher walks the ready heap moves to the parked heap: yield it once only.
    const yielded = new Set<string>()
    for (const user of this.#ready.ascending()) {
      if (yielded.has(user)) continue
      yielded.add(user)
      yield user
    }
    for (const user of this.#parked.ascending()) {
      if (yielded.has(user)) continue
      yielded.add(user)
      yield user
    }
  }

  #place(change: BacklogChange): void {
    if (change.head === undefined) return
    this.#ready.set(change.user, this.#rank(change.user, change.head), change.headSeq)
  }
}
