import FlatQueue from 'flatqueue'
import type { LinkedList, ListNode } from '../core/index.js'
import { appendNode, unlinkNode } from '../core/index.js'
import type { KvAccessTrace } from './kv-access-trace.js'
import type { KvTierOptions, KvTierPolicy, KvTierPolicyFactory } from './kv-tier-policy.js'

/**
 * The host-memory tier policies `bench analyze` compares (the contract and the model are in
 * kv-tier-policy.ts), registered by name in `kvTierPolicies`.
 */

/** Shared bookkeeping: tokens held per conversation and in total. */
abstract class TierBase implements KvTierPolicy {
  abstract readonly name: string
  protected readonly trace: KvAccessTrace
  protected readonly capacity: number
  protected readonly held: Float64Array
  protected total = 0

  constructor(trace: KvAccessTrace, options: KvTierOptions) {
    this.trace = trace
    this.capacity = Math.max(0, Math.floor(options.capacityTokens))
    this.held = new Float64Array(trace.conversations.length)
  }

  get heldTokens(): number {
    return this.total
  }

  heldOf(c: number): number {
    return this.held[c] as number
  }

  access(step: number): number {
    const c = this.trace.conversation[step] as number
    const before = this.held[c] as number
    // What the tier holds of a conversation is never more than its KV at its previous step: its history now.
    const hit = Math.min(before, this.trace.historyTokens[step] as number)
    const after = this.trace.sizeAfterTokens[step] as number
    this.stored(step, c, after - before)
    this.held[c] = after
    this.total += after - before
    // Each round either takes all the victim can give (a conversation, or FIFO's oldest segment) or ends the loop.
    while (this.total > this.capacity) {
      const victim = this.victim()
      const take = Math.min(this.evictable(victim), this.total - this.capacity)
      this.held[victim] = (this.held[victim] as number) - take
      this.total -= take
      this.evicted(victim, take)
    }
    return hit
  }

  /** Step `step` of conversation `c` put `added` more tokens into the tier (before any eviction). */
  protected abstract stored(step: number, c: number, added: number): void
  /** The conversation to take tokens from next; called only while the tier holds more than its capacity. */
  protected abstract victim(): number
  /** Tokens `victim()` can give up at once: all it holds, unless the policy orders its tokens in parts. */
  protected evictable(c: number): number {
    return this.held[c] as number
  }
  /** `take` tokens of `c` left the tier (`held[c]` is already lowered). */
  protected abstract evicted(c: number, take: number): void
}

/** First in, first out, by the time each token entered the tier: a hit does not renew it. */
class FifoTier extends TierBase {
  readonly name = 'fifo'
  // Segments of tokens in the order they entered: at most one per step.
  readonly #segmentOf: Int32Array
  readonly #segmentTokens: Float64Array
  #head = 0
  #tail = 0

  constructor(trace: KvAccessTrace, options: KvTierOptions) {
    super(trace, options)
    this.#segmentOf = new Int32Array(trace.steps)
    this.#segmentTokens = new Float64Array(trace.steps)
  }

  protected stored(_step: number, c: number, added: number): void {
    if (added <= 0) return
    this.#segmentOf[this.#tail] = c
    this.#segmentTokens[this.#tail] = added
    this.#tail++
  }

  protected victim(): number {
    while ((this.#segmentTokens[this.#head] as number) === 0) this.#head++
    return this.#segmentOf[this.#head] as number
  }

  protected override evictable(): number {
    return this.#segmentTokens[this.#head] as number
  }

  protected evicted(_c: number, take: number): void {
    this.#segmentTokens[this.#head] = (this.#segmentTokens[this.#head] as number) - take
  }
}

interface RecencyNode extends ListNode<RecencyNode> {
  readonly c: number
  linked: boolean
}

/** A recency list of conversations (least recent at the head), O(1) per move. */
class RecencyList {
  readonly #list: LinkedList<RecencyNode> = { head: undefined, tail: undefined }
  readonly #nodes: RecencyNode[] = []

  constructor(conversations: number) {
    for (let c = 0; c < conversations; c++) this.#nodes.push({ c, prev: undefined, next: undefined, linked: false })
  }

  get head(): number | undefined {
    return this.#list.head?.c
  }

  /** Make `c` the most recent. */
  touch(c: number): void {
    this.remove(c)
    const node = this.#nodes[c] as RecencyNode
    appendNode(this.#list, node)
    node.linked = true
  }

  remove(c: number): void {
    const node = this.#nodes[c] as RecencyNode
    if (!node.linked) return
    unlinkNode(this.#list, node)
    node.linked = false
  }
}

/** Least recently used conversation first. */
class LruTier extends TierBase {
  readonly name = 'lru'
  readonly #recency: RecencyList

  constructor(trace: KvAccessTrace, options: KvTierOptions) {
    super(trace, options)
    this.#recency = new RecencyList(trace.conversations.length)
  }

  protected stored(_step: number, c: number): void {
    this.#recency.touch(c)
  }

  protected victim(): number {
    return this.#recency.head as number
  }

  protected evicted(c: number): void {
    if (this.held[c] === 0) this.#recency.remove(c)
  }
}

/**
 * A max-heap of conversations by the step of their next use, with lazy deletion: an entry is current while
 * its priority is the conversation's key and the conversation still holds tokens.
 */
class NextUseHeap {
  readonly #queue = new FlatQueue<number>()
  readonly #key: Float64Array

  constructor(conversations: number) {
    this.#key = new Float64Array(conversations).fill(-1)
  }

  set(c: number, nextUse: number): void {
    this.#key[c] = nextUse
    this.#queue.push(c, -nextUse)
  }

  drop(c: number): void {
    this.#key[c] = -1
  }

  has(c: number): boolean {
    return (this.#key[c] as number) >= 0
  }

  /** The conversation needed furthest in the future, or undefined when empty. */
  top(): number | undefined {
    for (;;) {
      const c = this.#queue.peek()
      if (c === undefined) return undefined
      if (-(this.#queue.peekValue() as number) === this.#key[c]) return c
      this.#queue.pop()
    }
  }
}

/**
 * Belady's MIN with bypass: evict what is needed furthest in the future, the conversation just served
 * included (keeping none of a finished conversation, whose next use is never).
 */
class BeladyTier extends TierBase {
  readonly name = 'belady'
  readonly #heap: NextUseHeap

  constructor(trace: KvAccessTrace, options: KvTierOptions) {
    super(trace, options)
    this.#heap = new NextUseHeap(trace.conversations.length)
  }

  protected stored(step: number, c: number): void {
    const next = this.trace.next[step] as number
    this.#heap.set(c, next < 0 ? this.trace.steps : next)
  }

  protected victim(): number {
    return this.#heap.top() as number
  }

  protected evicted(c: number): void {
    if (this.held[c] === 0) this.#heap.drop(c)
  }
}

/**
 * Queue-aware: what a request waiting in the server's queue will read is kept; the rest goes least recently
 * used first, and only when nothing else is left does a waiting request's KV go, the one served last first
 * (the queue's order is known). "Waiting" comes from `lookaheadEnd`: the steps after the current one up to
 * it have arrived but are not served yet. With an empty window this is LRU; with a window spanning the whole
 * trace it is Belady.
 */
class QueueAwareTier extends TierBase {
  readonly name = 'queue-aware'
  readonly #recency: RecencyList
  readonly #waiting: NextUseHeap
  /** Requests of each conversation in the look-ahead window. */
  readonly #pending: Int32Array
  readonly #lookaheadEnd: Int32Array | undefined
  /** The last step admitted into the window so far. */
  #end = -1

  constructor(trace: KvAccessTrace, options: KvTierOptions) {
    super(trace, options)
    this.#recency = new RecencyList(trace.conversations.length)
    this.#waiting = new NextUseHeap(trace.conversations.length)
    this.#pending = new Int32Array(trace.conversations.length)
    this.#lookaheadEnd = options.lookaheadEnd
  }

  override access(step: number): number {
    // The step itself and whatever has arrived by the time it is served join the window.
    const end = Math.max(step, this.#lookaheadEnd?.[step] ?? step)
    while (this.#end < end) {
      this.#end++
      const d = this.trace.conversation[this.#end] as number
      this.#pending[d] = (this.#pending[d] as number) + 1
      // A first waiting request protects what the tier holds of its conversation; that request is its next use.
      if (this.#pending[d] === 1 && (this.held[d] as number) > 0) {
        this.#recency.remove(d)
        this.#waiting.set(d, this.#end)
      }
    }
    const c = this.trace.conversation[step] as number
    this.#pending[c] = (this.#pending[c] as number) - 1
    return super.access(step)
  }

  protected stored(step: number, c: number): void {
    if ((this.#pending[c] as number) > 0) {
      this.#recency.remove(c)
      this.#waiting.set(c, this.trace.next[step] as number)
    } else {
      this.#waiting.drop(c)
      this.#recency.touch(c)
    }
  }

  protected victim(): number {
    return this.#recency.head ?? (this.#waiting.top() as number)
  }

  protected evicted(c: number): void {
    if (this.held[c] !== 0) return
    this.#recency.remove(c)
    this.#waiting.drop(c)
  }
}

const factory = (
  name: string,
  description: string,
  Tier: new (trace: KvAccessTrace, options: KvTierOptions) => KvTierPolicy,
): KvTierPolicyFactory => ({ name, description, create: (trace, options) => new Tier(trace, options) })

/** The policies `bench analyze` compares, in the order it prints them. */
export const kvTierPolicies: readonly KvTierPolicyFactory[] = [
  factory('fifo', 'first in, first out by the time KV entered the tier', FifoTier),
  factory('lru', 'least recently used conversation first', LruTier),
  factory('queue-aware', 'keeps the KV of requests waiting in the queue, LRU for the rest', QueueAwareTier),
  factory('belady', "Belady's optimal: evicts what is needed furthest in the future", BeladyTier),
]

/** Hit tokens per step for one policy and capacity. */
export function simulateKvTier(
  trace: KvAccessTrace,
  policy: KvTierPolicyFactory,
  options: KvTierOptions,
): Float64Array {
  const tier = policy.create(trace, options)
  const hits = new Float64Array(trace.steps)
  for (let i = 0; i < trace.steps; i++) hits[i] = tier.access(i)
  return hits
}
