import { appendNode, unlinkNode } from '../core/index.js'
import type { PolicyRequest } from './policy.js'

/**
 * The policy's mirror of the admission queue: which requests each user has waiting, in arrival order.
 * Policies need it to know when a user becomes backlogged or idle (VTC's lift) and which request is each
 * user's head (FIFO order across users). Every operation is O(1).
 *
 * Unknown ids are ignored rather than thrown on: after a config reload the admission queue may hand a new
 * policy the endings of requests it never saw enqueued.
 */
export interface BacklogChange {
  readonly user: string
  /** The user's queue went from empty to non-empty (add) or from non-empty to empty (remove). */
  readonly becameBacklogged: boolean
  readonly becameIdle: boolean
  /** The user's head after the change, if any. */
  readonly head: PolicyRequest | undefined
  /** The head's position in arrival order, for FIFO tie-breaks. */
  readonly headSeq: number
}

interface Waiting {
  readonly request: PolicyRequest
  readonly seq: number
  readonly user: UserQueue
  prev: Waiting | undefined
  next: Waiting | undefined
}

/**
 * One user's waiting requests as a doubly linked list, so that the head is a field read and removal from
 * anywhere is O(1). Not a Map in insertion order: V8 leaves a hole for every deleted entry until it rehashes,
 * and `values().next()` walks the holes at the front, so reading the head after removing the previous one
 * cost O(removed so far) (docs/benchmarks.md, finding 3: draining 50,000 took ~1 s).
 */
interface UserQueue {
  readonly name: string
  head: Waiting | undefined
  tail: Waiting | undefined
  /** Σ need (prompt + predicted output) of its waiting requests, and how many they are. */
  need: number
  count: number
}

/** What a waiting request will take of the KV cache when admitted. */
export const needOf = (request: PolicyRequest): number =>
  Math.max(0, request.promptTokens) + Math.max(0, request.predictedOutputTokens)

export class Backlog {
  readonly #queues = new Map<string, UserQueue>()
  readonly #waiting = new Map<string, Waiting>()
  #nextSeq = 0
  #totalNeed = 0

  /** Σ need of every waiting request. */
  get totalNeed(): number {
    return this.#totalNeed
  }

  /** Σ need of one user's waiting requests (0 when it has none). */
  userNeed(user: string): number {
    return this.#queues.get(user)?.need ?? 0
  }

  /** How many requests a user has waiting. */
  userCount(user: string): number {
    return this.#queues.get(user)?.count ?? 0
  }

  /**
   * What of `request`'s own user's queue goes before it: its user's waiting requests but itself, for a
   * request that is the newest of its queue or not queued at all (`Policy.waitAhead`'s two cases).
   */
  ownAhead(request: PolicyRequest): { need: number; count: number } {
    const queued = this.#waiting.has(request.id)
    const user = request.user.name
    return {
      need: this.userNeed(user) - (queued ? needOf(request) : 0),
      count: this.userCount(user) - (queued ? 1 : 0),
    }
  }

  /** Number of users with waiting requests. */
  get users(): number {
    return this.#queues.size
  }

  isBacklogged(user: string): boolean {
    return this.#queues.has(user)
  }

  has(requestId: string): boolean {
    return this.#waiting.has(requestId)
  }

  head(user: string): { request: PolicyRequest; seq: number } | undefined {
    return this.#queues.get(user)?.head
  }

  /** Returns undefined if the request was already waiting (a duplicate enqueue). */
  add(request: PolicyRequest): BacklogChange | undefined {
    if (this.#waiting.has(request.id)) return undefined
    const user = request.user.name
    let queue = this.#queues.get(user)
    const becameBacklogged = queue === undefined
    if (queue === undefined) {
      queue = { name: user, head: undefined, tail: undefined, need: 0, count: 0 }
      this.#queues.set(user, queue)
    }
    queue.need += needOf(request)
    queue.count++
    this.#totalNeed += needOf(request)
    const waiting: Waiting = { request, seq: this.#nextSeq++, user: queue, prev: undefined, next: undefined }
    appendNode(queue, waiting)
    this.#waiting.set(request.id, waiting)
    const head = queue.head as Waiting
    return { user, becameBacklogged, becameIdle: false, head: head.request, headSeq: head.seq }
  }

  /** Returns undefined if the request was not waiting. */
  remove(requestId: string): BacklogChange | undefined {
    const waiting = this.#waiting.get(requestId)
    if (waiting === undefined) return undefined
    this.#waiting.delete(requestId)
    const queue = waiting.user
    unlinkNode(queue, waiting)
    queue.need -= needOf(waiting.request)
    queue.count--
    this.#totalNeed -= needOf(waiting.request)
    const head = queue.head
    if (head === undefined) {
      this.#queues.delete(queue.name)
      // Integer sums stay exact; reset anyway so nothing can drift past an empty queue.
      if (this.#queues.size === 0) this.#totalNeed = 0
      return { user: queue.name, becameBacklogged: false, becameIdle: true, head: undefined, headSeq: -1 }
    }
    return { user: queue.name, becameBacklogged: false, becameIdle: false, head: head.request, headSeq: head.seq }
  }

  /** Whether this request is the newest of its user's waiting ones. */
  isTail(requestId: string): boolean {
    const waiting = this.#waiting.get(requestId)
    return waiting !== undefined && waiting.user.tail === waiting
  }

  /** Users with waiting requests (unordered). */
  backloggedUsers(): IterableIterator<string> {
    return this.#queues.keys()
  }
}
