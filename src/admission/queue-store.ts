import { appendNode, IndexedHeap, unlinkNode, type HeapNode, type LinkedList, type ListNode } from '../core/index.js'
import type { KvgateError } from '../errors/index.js'
import type { PolicyRequest, PolicyUser, QuotaDecision } from '../policies/index.js'
import type { Admission, AdmissionTicket } from './contracts.js'

/** A waiting request: in its user's list, in the deadline heap and in one need bucket, all intrusive. */
export interface QueueItem extends ListNode<QueueItem>, HeapNode {
  readonly seq: number
  readonly ticket: AdmissionTicket
  readonly request: PolicyRequest
  readonly needTokens: number
  readonly enqueuedAtMs: number
  /** Its queue deadline (ms after arrival): the ticket's, or the SLO-derived one if shorter. */
  readonly deadlineMs: number
  readonly deadlineAtMs: number
  /** The wait predicted when it could not be admitted at once (checked when it leaves); else undefined. */
  predictedWaitMs: number | undefined
  /** Its need's bucket for the wait calibration. */
  needBucket: number
  readonly userQueue: UserQueue
  queued: boolean
  bypassedSinceMs: number | undefined
  /** The last quota denial, kept for the deadline rejection's reason and retry-after. */
  quotaDenied: Extract<QuotaDecision, { allowed: false }> | undefined
  /** A shared ledger is confirming its admission (it stays queued until the verdict). */
  confirming: boolean
  /** A shared ledger refused it: not tried again until the confirmer's epoch moves past this one... */
  refusedEpoch: number | undefined
  /** ...or, refused by a shared quota, until this time. */
  refusedUntilMs: number | undefined
  resolve: (admission: Admission) => void
  reject: (error: KvgateError) => void
  onAbort: (() => void) | undefined
}

/** One user's FIFO as an intrusive doubly-linked list: O(1) push, pop and removal from the middle (abort, deadline). */
export interface UserQueue extends LinkedList<QueueItem> {
  readonly name: string
  /** Weight counted into the active weight while the queue is non-empty (kept so a reload cannot skew it). */
  weight: number
  size: number
  needTokens: number
}

/** Need buckets: bit lengths 0..33 (needs past 2^32 share the last); 34 = none. */
const NEED_BUCKETS = 34

const byDeadline = (a: QueueItem, b: QueueItem): boolean =>
  a.deadlineAtMs < b.deadlineAtMs || (a.deadlineAtMs === b.deadlineAtMs && a.seq < b.seq)

/**
 * The waiting requests and the running totals the dispatcher and the wait prediction read in O(1): depth,
 * queued need, the weight of users with something queued, and a lower bound on the smallest need. Nothing
 * here calls the policy; the controller tells the policy what happened.
 *
 * Deadlines differ per request (a client header may shorten its own), so the per-user FIFO lists are not
 * ordered by deadline and the sweep has its own order, the heap. Items leave far more often by admission or
 * client abort than by expiry, hence a heap with removal from the middle.
 */
export class QueueStore {
  readonly #queues = new Map<string, UserQueue>()
  readonly #heap = new IndexedHeap<QueueItem>(byDeadline)
  #depth = 0
  #queuedNeedTokens = 0
  #activeWeight = 0
  /**
   * Queued requests per bit length of their need (bucket b holds needs in [2^(b−1), 2^b)): a lower bound on the
   * smallest queued need in O(1), so a decision with less room than that skips asking the policy at all — the
   * common case right after the one request that fitted took the room.
   */
  readonly #needBuckets = new Uint32Array(NEED_BUCKETS)
  /** Lowest non-empty bucket (NEED_BUCKETS = none); raised lazily when that bucket empties. */
  #minNeedBucket = NEED_BUCKETS

  get depth(): number {
    return this.#depth
  }

  get queuedNeedTokens(): number {
    return this.#queuedNeedTokens
  }

  /** Σ weight of users with something queued. */
  get activeWeight(): number {
    return this.#activeWeight
  }

  /** Users with something queued. */
  get users(): number {
    return this.#queues.size
  }

  /** The user's queue, created (empty, not yet counted as active) if it has none. */
  queueFor(user: PolicyUser): UserQueue {
    let queue = this.#queues.get(user.name)
    if (queue === undefined) {
      queue = { name: user.name, weight: user.weight, head: undefined, tail: undefined, size: 0, needTokens: 0 }
      this.#queues.set(user.name, queue)
    }
    return queue
  }

  /** The user's queue if it has one; an empty stand-in (not stored) for a user with nothing queued. */
  peekQueue(user: PolicyUser): UserQueue {
    return (
      this.#queues.get(user.name) ?? {
        name: user.name,
        weight: positiveWeight(user.weight),
        head: undefined,
        tail: undefined,
        size: 0,
        needTokens: 0,
      }
    )
  }

  /** The queues of users with something queued (a debug view reads them; nothing may change them). */
  userQueues(): IterableIterator<Readonly<UserQueue>> {
    return this.#queues.values()
  }

  head(userName: string): QueueItem | undefined {
    return this.#queues.get(userName)?.head
  }

  /** The item whose deadline comes first. */
  earliestDeadline(): QueueItem | undefined {
    return this.#heap.peek()
  }

  add(item: QueueItem): void {
    const queue = item.userQueue
    if (queue.size === 0) {
      queue.weight = positiveWeight(item.ticket.user.weight)
      this.#activeWeight += queue.weight
    }
    appendNode(queue, item)
    queue.size++
    queue.needTokens += item.needTokens
    const bucket = needBucket(item.needTokens)
    this.#needBuckets[bucket]!++
    if (bucket < this.#minNeedBucket) this.#minNeedBucket = bucket
    this.#heap.push(item)
    this.#depth++
    this.#queuedNeedTokens += item.needTokens
  }

  /** Take an item out of every structure and drop its abort listener; true when the queue became empty. */
  unlink(item: QueueItem): boolean {
    item.queued = false
    const queue = item.userQueue
    unlinkNode(queue, item)
    queue.size--
    queue.needTokens -= item.needTokens
    const bucket = needBucket(item.needTokens)
    if (--this.#needBuckets[bucket]! === 0 && bucket === this.#minNeedBucket) {
      while (this.#minNeedBucket < NEED_BUCKETS && this.#needBuckets[this.#minNeedBucket] === 0) this.#minNeedBucket++
    }
    if (queue.size === 0) {
      this.#activeWeight -= queue.weight
      // Forget idle users so the map is bounded by users with waiting requests.
      if (this.#queues.get(queue.name) === queue) this.#queues.delete(queue.name)
    }
    this.#heap.remove(item)
    this.#queuedNeedTokens -= item.needTokens
    if (item.onAbort !== undefined) {
      item.ticket.signal?.removeEventListener('abort', item.onAbort)
      item.onAbort = undefined
    }
    if (--this.#depth > 0) return false
    // Sums of integers stay exact, but reset anyway so no drift can ever survive an empty queue.
    this.#queuedNeedTokens = 0
    this.#activeWeight = 0
    return true
  }

  /** A lower bound on the smallest need in the queue (0 if some request needs under 1 token). */
  smallestNeedBound(): number {
    const b = this.#minNeedBucket
    return b >= NEED_BUCKETS ? Number.POSITIVE_INFINITY : b === 0 ? 0 : 2 ** (b - 1)
  }

  /** Every waiting item, oldest first: O(n log n), for the debug listing, a reload and shutdown only. */
  inArrivalOrder(): QueueItem[] {
    const items: QueueItem[] = []
    for (const queue of this.#queues.values()) {
      for (let item = queue.head; item !== undefined; item = item.next) items.push(item)
    }
    return items.sort((a, b) => a.seq - b.seq)
  }
}

/** Bit length of a need: 0 → 0, 1 → 1, 2–3 → 2, 4–7 → 3, …; needs past 2^32 share the last bucket. */
function needBucket(needTokens: number): number {
  if (needTokens < 1) return 0
  return needTokens >= 2 ** 32 ? NEED_BUCKETS - 1 : 32 - Math.clz32(needTokens)
}

export function positiveWeight(weight: number): number {
  return weight > 0 && Number.isFinite(weight) ? weight : 1
}
