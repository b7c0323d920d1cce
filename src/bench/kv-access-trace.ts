import type { Conversation, TraceRequest, Workload } from './workload.js'

/**
 * A workload as the sequence of KV accesses a host-memory tier would see: one step per request, in the order
 * the server takes them. A conversation's KV is everything its earlier rounds produced (their prompts and
 * answers); a request reads all of it (its history: the KV that must be loaded from the tier or recomputed)
 * and leaves a KV larger by its new turn and its answer. Requests outside a conversation are conversations
 * of one round: their KV is written once and never read again, which only a policy that knows the future
 * can tell.
 *
 * Token arithmetic follows prompts.ts, so the figures describe what the bench sends: a trace's
 * `inputTokens` already counts the turn's two chat markers, and a conversation turn adds
 * `userTokens + 2` (the user marker and the generation prompt), plus the prefixes on its first turn.
 */
export interface KvAccessTrace {
  /** `arrival`: a trace's own times; `closed-loop`: conversation inputs, in the bench's closed-loop order. */
  order: 'arrival' | 'closed-loop'
  steps: number
  /** The conversation of each step, an index into `conversations`. */
  conversation: Int32Array
  /** Seconds since the first request; absent for closed-loop orders, which have no clock before a run. */
  timeSec?: Float64Array
  /** KV tokens the step reads: its conversation's KV before it. */
  historyTokens: Float64Array
  /** The conversation's KV tokens after the step: history + new turn + answer. */
  sizeAfterTokens: Float64Array
  /** The step's answer length. */
  outputTokens: Float64Array
  /** 0-based round of the step within its conversation. */
  round: Int32Array
  /** The same conversation's previous step, or -1. */
  previous: Int32Array
  /** The same conversation's next step, or -1. */
  next: Int32Array
  conversations: readonly { id: string; user: string }[]
}

const ANONYMOUS = 'anonymous'

/** Two chat markers per turn: the user role marker and the generation prompt (the assistant marker). */
const TURN_MARKER_TOKENS = 2

export interface ClosedLoopOrder {
  numClients: number
  maxActiveConversations?: number
}

export function buildKvAccessTrace(workload: Workload, closedLoop: ClosedLoopOrder = { numClients: 1 }): KvAccessTrace {
  if (workload.kind === 'trace') return fromTrace(workload.requests)
  return fromConversations(workload.conversations, workload.commonPrefixTokens, closedLoop)
}

interface Step {
  key: string
  user: string
  timeSec?: number
  newTokens: number
  outputTokens: number
}

function fromTrace(requests: readonly TraceRequest[]): KvAccessTrace {
  return assemble(
    'arrival',
    requests.map((r, i) => ({
      key: r.conversationId ?? `request-${i}`,
      user: r.user ?? ANONYMOUS,
      timeSec: r.arrivalMs / 1000,
      newTokens: r.inputTokens,
      outputTokens: r.outputTokens,
    })),
  )
}

/**
 * The order `runConversations` sends turns in when every request takes the same time: the clients take
 * turns, each keeping its share of `maxActiveConversations` open and sending the next turn of one of them,
 * round robin, refilled from one shared queue. Real runs interleave by latency; this is the order they
 * start from, and the only one known before a run.
 */
function fromConversations(
  conversations: readonly Conversation[],
  commonPrefixTokens: number,
  order: ClosedLoopOrder,
): KvAccessTrace {
  const numClients = Math.max(1, order.numClients)
  const perClient = Math.max(1, Math.floor((order.maxActiveConversations ?? numClients) / numClients))
  const queue = [...conversations]
  let queued = 0
  const clients = Array.from({ length: numClients }, () => ({
    active: [] as { conversation: Conversation; nextTurn: number }[],
    pointer: 0,
  }))
  const steps: Step[] = []
  for (let busy = true; busy; ) {
    busy = false
    for (const client of clients) {
      while (client.active.length < perClient && queued < queue.length) {
        client.active.push({ conversation: queue[queued++] as Conversation, nextTurn: 0 })
      }
      if (client.active.length === 0) continue
      busy = true
      client.pointer %= client.active.length
      const current = client.active[client.pointer] as { conversation: Conversation; nextTurn: number }
      const turn = current.conversation.turns[current.nextTurn]
      if (turn === undefined) {
        client.active.splice(client.pointer, 1)
        continue
      }
      const prefix = current.nextTurn === 0 ? commonPrefixTokens + current.conversation.prefixTokens : 0
      steps.push({
        key: current.conversation.id,
        user: current.conversation.user ?? ANONYMOUS,
        newTokens: prefix + turn.userTokens + TURN_MARKER_TOKENS,
        outputTokens: turn.outputTokens,
      })
      current.nextTurn++
      if (current.nextTurn >= current.conversation.turns.length) client.active.splice(client.pointer, 1)
      else client.pointer++
    }
  }
  return assemble('closed-loop', steps)
}

function assemble(order: KvAccessTrace['order'], steps: readonly Step[]): KvAccessTrace {
  const n = steps.length
  const trace: KvAccessTrace = {
    order,
    steps: n,
    conversation: new Int32Array(n),
    historyTokens: new Float64Array(n),
    sizeAfterTokens: new Float64Array(n),
    outputTokens: new Float64Array(n),
    round: new Int32Array(n),
    previous: new Int32Array(n).fill(-1),
    next: new Int32Array(n).fill(-1),
    conversations: [],
  }
  if (order === 'arrival') trace.timeSec = new Float64Array(n)
  const index = new Map<string, number>()
  const conversations: { id: string; user: string }[] = []
  const last: number[] = []
  const size: number[] = []
  const rounds: number[] = []
  steps.forEach((step, i) => {
    let c = index.get(step.key)
    if (c === undefined) {
      c = conversations.length
      index.set(step.key, c)
      conversations.push({ id: step.key, user: step.user })
      last.push(-1)
      size.push(0)
      rounds.push(0)
    }
    const previous = last[c] as number
    trace.conversation[i] = c
    trace.previous[i] = previous
    if (previous >= 0) trace.next[previous] = i
    trace.historyTokens[i] = size[c] as number
    size[c] = (size[c] as number) + step.newTokens + step.outputTokens
    trace.sizeAfterTokens[i] = size[c] as number
    trace.outputTokens[i] = step.outputTokens
    trace.round[i] = rounds[c] as number
    rounds[c] = (rounds[c] as number) + 1
    if (trace.timeSec !== undefined) trace.timeSec[i] = step.timeSec ?? 0
    last[c] = i
  })
  trace.conversations = conversations
  return trace
}

/** Whether a workload has conversations at all (rounds that carry history). */
export function hasConversations(workload: Workload): boolean {
  if (workload.kind === 'conversations') return workload.conversations.length > 0
  return workload.requests.some((r) => r.conversationId !== undefined)
}

/** Prefix sums over steps with point updates (a Fenwick tree): the KV touched between two steps. */
class StepSums {
  readonly #tree: Float64Array
  constructor(size: number) {
    this.#tree = new Float64Array(size + 1)
  }
  add(i: number, value: number): void {
    for (let k = i + 1; k < this.#tree.length; k += k & -k) this.#tree[k] = (this.#tree[k] as number) + value
  }
  /** Sum of steps 0..i inclusive. */
  prefix(i: number): number {
    let sum = 0
    for (let k = i + 1; k > 0; k -= k & -k) sum += this.#tree[k] as number
    return sum
  }
}

/**
 * Weighted reuse distance of every step, in tokens (-1 for a step without history): the KV of the distinct
 * other conversations touched since its conversation's previous step, each at its size after its last touch
 * in between. It is LRU's stack distance in tokens, so an LRU tier of C tokens holds
 * `clamp(C − distance, 0, history)` tokens of the step's history.
 */
export function reuseDistances(trace: KvAccessTrace): Float64Array {
  const out = new Float64Array(trace.steps).fill(-1)
  const sums = new StepSums(trace.steps)
  for (let i = 0; i < trace.steps; i++) {
    const p = trace.previous[i] as number
    if (p >= 0) {
      if ((trace.historyTokens[i] as number) > 0) out[i] = sums.prefix(i - 1) - sums.prefix(p)
      sums.add(p, -(trace.sizeAfterTokens[p] as number))
    }
    sums.add(i, trace.sizeAfterTokens[i] as number)
  }
  return out
}

/** The last step each step sees waiting: what arrived within `windowSec`, or the next `requests` steps. */
export function lookaheadEnds(trace: KvAccessTrace, window: { seconds: number } | { requests: number }): Int32Array {
  const n = trace.steps
  const ends = new Int32Array(n)
  const times = trace.timeSec
  if ('seconds' in window && times !== undefined) {
    let j = 0
    for (let i = 0; i < n; i++) {
      if (j < i) j = i
      while (j + 1 < n && (times[j + 1] as number) <= (times[i] as number) + window.seconds) j++
      ends[i] = j
    }
  } else {
    const ahead = 'requests' in window ? window.requests : 0
    for (let i = 0; i < n; i++) ends[i] = Math.min(n - 1, i + ahead)
  }
  return ends
}
