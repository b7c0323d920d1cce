import { describe, expect, it } from 'vitest'
import { analyzeWorkload, parseTrace } from '../../src/bench/index.js'
import type { Workload } from '../../src/bench/index.js'
import { analyzeConversationKv, cdfPoints } from '../../src/bench/conversation-kv.js'
import { formatBytes } from '../../src/bench/conversation-kv-format.js'
import { buildKvAccessTrace, reuseDistances } from '../../src/bench/kv-access-trace.js'
import { kvCost } from '../../src/bench/kv-models.js'

const trace = (text: string): Workload => {
  const parsed = parseTrace(text)
  return { kind: 'trace', format: parsed.format, requests: parsed.requests, skipped: parsed.skipped }
}

/**
 * Three users one second apart. Conversation KV after each step (tokens): a 20, b 10, a 40, b 20, c 20, a 60.
 * Steps 2, 3 and 5 return, carrying 20, 10 and 40 tokens of history.
 */
const HAND = trace(`user_id time_stamp(seconds) query_length response_length round_index
a 0 10 10 0
b 1 5 5 0
a 2 10 10 1
b 3 5 5 1
c 4 20 0 0
a 5 10 10 2
`)

/** 1 byte per token, so sizes read in tokens; 30 tokens of host memory. */
const ONE_BYTE = { model: 'custom', bytesPerToken: 1 }
const GIB = 2 ** 30

describe('conversation KV figures on a trace computed by hand', () => {
  const kv = analyzeConversationKv(buildKvAccessTrace(HAND), {
    kv: ONE_BYTE,
    hostMemoryGiB: [30 / GIB],
    queueWindowSec: 1.5,
    closedLoop: { numClients: 1 },
  })

  it('history per request and weighted reuse distance per returning turn', () => {
    expect(kv.requests).toBe(6)
    expect(kv.returningTurns).toBe(3)
    expect(kv.history.totalBytes).toBe(20 + 10 + 40)
    expect(kv.history.firstTurnShare).toBe(3 / 6)
    expect(kv.history.byRound.map((r) => [r.round, r.requests, r.meanTokens])).toEqual([
      [0, 3, 0],
      [1, 2, 15],
      [2, 1, 40],
    ])
    // Step 2 (a): b's 10 since a's step 0. Step 3 (b): a's 40. Step 5 (a): b's 20 and c's 20.
    expect(Array.from(reuseDistances(buildKvAccessTrace(HAND)))).toEqual([-1, -1, 10, 40, -1, 40])
    expect(kv.reuseDistance.cdfBytes).toEqual([
      [10, 1 / 3],
      [40, 2 / 3],
      [40, 1],
    ])
    expect(kv.reuseDistance.bytes['min']).toBe(10)
    expect(kv.reuseDistance.bytes['mean']).toBe(30)
  })

  it('per user: rounds, conversations and duration', () => {
    expect(kv.users.count).toBe(3)
    expect(kv.users.roundsHistogram).toEqual([
      { rounds: 1, users: 1 },
      { rounds: 2, users: 1 },
      { rounds: 3, users: 1 },
    ])
    expect(kv.users.rounds['mean']).toBe(2)
    expect(kv.users.durationSec?.['max']).toBe(5)
    expect(kv.users.durationCdfSec).toEqual([
      [0, 1 / 3],
      [2, 2 / 3],
      [5, 1],
    ])
  })

  it('hit rates of a 30-token tier under each policy', () => {
    // FIFO: a's first 20 go when a grows to 40; b keeps its 10 (hit), then c's 20 push out a's rest: 20 + 10 + 0.
    // LRU: b is least recent when a grows, a when b grows, both when c arrives: 20 + 0 + 0.
    // Queue-aware (b's and then a's next turn wait 1 s ahead): b is protected and hits, a keeps 10: 20 + 10 + 10.
    // Belady: b's KV after its last turn and c's (never read) go first, a keeps 20: 20 + 10 + 20.
    const [size] = kv.hostMemory.sizes
    expect(size?.capacityTokens).toBe(30)
    const rates = Object.fromEntries(size?.policies.map((p) => [p.policy, p.hitBytes]) ?? [])
    expect(rates).toEqual({ fifo: 30, lru: 20, 'queue-aware': 40, belady: 50 })
    const belady = size?.policies.find((p) => p.policy === 'belady')
    expect(belady?.hitRate).toBe(50 / 70)
    expect(belady?.missBytes).toBe(20)
    // Whole-history hits: Belady finds steps 2 and 3 whole, step 5 only in half.
    expect(belady?.requestHitRate).toBe(2 / 3)
    expect(kv.hostMemory.queueWindow).toEqual({ seconds: 1.5 })
  })

  it('hit rate by reuse distance, over time, and the lower bound by previous answer length', () => {
    // Distances 10, 40, 40: two buckets, [10, 40) with step 2 and [40, 40] with steps 3 and 5.
    expect(kv.hitRateByReuseDistance.buckets.map((b) => [b.fromBytes, b.toBytes, b.turns])).toEqual([
      [10, 40, 1],
      [40, 40, 2],
    ])
    expect(kv.hitRateByReuseDistance.sizes[0]?.policies['lru']).toEqual([1, 0])
    expect(kv.hitRateByReuseDistance.sizes[0]?.policies['belady']).toEqual([1, 30 / 50])
    expect(kv.hitRateOverTime?.bucketSec).toBe(1)
    expect(kv.hitRateOverTime?.sizes[0]?.policies['fifo']).toEqual([null, null, 1, 1, null, 0])
    // All previous answers are under 32 tokens: one bucket with distances 10, 40, 40.
    const [hour] = kv.reuseDistanceLowerBound.windows
    expect(hour?.label).toBe('hour 0')
    expect(hour?.buckets[0]).toEqual({ fromTokens: 0, toTokens: 32, turns: 3, minBytes: 10, p50Bytes: 40 })
    expect(hour?.buckets.slice(1).every((b) => b.turns === 0 && b.minBytes === null)).toBe(true)
  })

  it('is part of analyzeWorkload when asked for, and absent without conversations', () => {
    const options = {
      kv: kvCost({}),
      hostMemoryGiB: [1],
      queueWindowSec: 0,
      closedLoop: { numClients: 1 },
    }
    const analysis = analyzeWorkload(HAND, { blockSizes: [], conversationKv: options })
    expect(analysis.conversationKv?.model).toMatchObject({ model: 'opt-13b', bytesPerToken: 800 * 1024 })
    expect(analysis.conversationKv?.history.totalBytes).toBe(70 * 800 * 1024)
    const single = trace('Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n0,a,100,5,105,x\n')
    expect(analyzeWorkload(single, { conversationKv: options }).conversationKv).toBeUndefined()
  })
})

describe('closed-loop order of conversation inputs', () => {
  const workload: Workload = {
    kind: 'conversations',
    format: 'generate-conversations',
    commonPrefixTokens: 5,
    skipped: [],
    conversations: [0, 1, 2].map((c) => ({
      id: `conv-${c}`,
      user: `user-${c}`,
      prefixTokens: 3,
      turns: [
        { userTokens: 10, outputTokens: 20 },
        { userTokens: 4, outputTokens: 6 },
      ],
    })),
  }

  it('follows the bench: each client round-robins its open conversations and refills from one queue', () => {
    const order = buildKvAccessTrace(workload, { numClients: 1, maxActiveConversations: 2 })
    expect(order.order).toBe('closed-loop')
    expect(order.timeSec).toBeUndefined()
    expect(Array.from(order.conversation)).toEqual([0, 1, 0, 1, 2, 2])
    // First turn: common prefix 5 + prefix 3 + 10 + two chat markers, then a 20-token answer.
    expect(Array.from(order.historyTokens)).toEqual([0, 0, 40, 40, 0, 40])
    expect(Array.from(order.sizeAfterTokens)).toEqual([40, 40, 52, 52, 40, 52])
    const two = buildKvAccessTrace(workload, { numClients: 2 })
    expect(Array.from(two.conversation)).toEqual([0, 1, 0, 1, 2, 2])
    const one = buildKvAccessTrace(workload, { numClients: 1 })
    expect(Array.from(one.conversation)).toEqual([0, 0, 1, 1, 2, 2])
  })

  it('queue-aware waits for the open conversations; no clock, so no durations or hours', () => {
    const kv = analyzeConversationKv(buildKvAccessTrace(workload, { numClients: 1, maxActiveConversations: 2 }), {
      kv: ONE_BYTE,
      hostMemoryGiB: [40 / GIB],
      queueWindowSec: 30,
      closedLoop: { numClients: 1, maxActiveConversations: 2 },
    })
    expect(kv.hostMemory.queueWindow).toEqual({ requests: 2 })
    expect(kv.closedLoop).toEqual({ numClients: 1, maxActiveConversations: 2 })
    expect(kv.users.durationSec).toBeUndefined()
    expect(kv.hitRateOverTime).toBeUndefined()
    expect(kv.reuseDistanceLowerBound.windows.map((w) => w.label)).toEqual(['all'])
    // Distances: conv-0's second turn follows conv-1's 40 tokens, conv-1's follows conv-0's 52, conv-2's none.
    expect(kv.reuseDistance.cdfBytes).toEqual([
      [0, 1 / 3],
      [40, 2 / 3],
      [52, 1],
    ])
    // 40 tokens hold one conversation: LRU has just evicted the one that comes back; Belady keeps it.
    const hits = Object.fromEntries(kv.hostMemory.sizes[0]?.policies.map((p) => [p.policy, p.hitBytes]) ?? [])
    expect(hits).toMatchObject({ lru: 40, belady: 80 })
  })
})

describe('units and helpers', () => {
  it('KV bytes per token of the named models, and a given figure', () => {
    expect(kvCost({ model: 'opt-13b' }).bytesPerToken).toBe(40 * 5120 * 2 * 2)
    expect(formatBytes(kvCost({ model: 'opt-13b' }).bytesPerToken)).toBe('800 KiB')
    expect(kvCost({ model: 'llama-3-8b' }).bytesPerToken).toBe(128 * 1024)
    expect(kvCost({ model: 'llama-2-70b' }).bytesPerToken).toBe(320 * 1024)
    expect(kvCost({ model: 'opt-13b', bytesPerToken: 100 })).toEqual({ model: 'custom', bytesPerToken: 100 })
    expect(() => kvCost({ model: 'gpt-5' })).toThrow(/unknown --kv-model "gpt-5"/)
  })

  it('a CDF keeps at most its point budget and ends at 1', () => {
    const values = Array.from({ length: 1000 }, (_, i) => i)
    const cdf = cdfPoints(values, 100)
    expect(cdf).toHaveLength(100)
    expect(cdf[0]).toEqual([9, 0.01])
    expect(cdf[99]).toEqual([999, 1])
    expect(cdfPoints([])).toEqual([])
  })
})
