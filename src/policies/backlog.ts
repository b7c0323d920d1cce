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
}

export class Backlog {
  // A Map per user keeps insertion order and deletes in O(1), so the first entry is always the head.
  readonly #queues = new Map<string, Map<string, Waiting>>()
  readonly #userOf = new Map<string, string>()
  #nextSeq = 0

  /** Number of users with waiting requests. */
  get users(): number {
    return this.#queues.size
  }

  isBacklogged(user: string): boolean {
    return this.#queues.has(user)
  }

  has(requestId: string): boolean {
    return this.#userOf.has(requestId)
  }

  head(user: string): { request: PolicyRequest; seq: number } | undefined {
    const queue = this.#queues.get(user)
    if (queue === undefined) return undefined
    return queue.values().next().value
  }

  /** Returns undefined if the request was already waiting (a duplicate enqueue). */
  add(request: PolicyRequest): BacklogChange | undefined {
    if (this.#userOf.has(request.id)) return undefined
    const user = request.user.name
    let queue = this.#queues.get(user)
    const becameBacklogged = queue === undefined
    if (queue === undefined) {
      queue = new Map()
      this.#queues.set(user, queue)
    }
    queue.set(request.id, { request, seq: this.#nextSeq++ })
    this.#userOf.set(request.id, user)
    const head = queue.values().next().value as Waiting
    return { user, becameBacklogged, becameIdle: false, head: head.request, headSeq: head.seq }
  }

  /** Returns undefined if the request was not waiting. */
  remove(requestId: string): BacklogChange | undefined {
    const user = this.#userOf.get(requestId)
    if (user === undefined) return undefined
    this.#userOf.delete(requestId)
    const queue = this.#queues.get(user) as Map<string, Waiting>
    queue.delete(requestId)
    if (queue.size === 0) {
      this.#queues.delete(user)
      return { user, becameBacklogged: false, becameIdle: true, head: undefined, headSeq: -1 }
    }
    const head = queue.values().next().value as Waiting
    return { user, becameBacklogged: false, becameIdle: false, head: head.request, headSeq: head.seq }
  }

  /** Users with waiting requests (unordered). */
  backloggedUsers(): IterableIterator<string> {
    return this.#queues.keys()
  }
}
