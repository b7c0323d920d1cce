import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { createSeededRandom } from '../../src/core/index.js'
import { createWordPieceTokenCounter } from '../../src/tokens/index.js'
import { loadWorkload, traceToConversations } from '../../src/bench/index.js'

const counter = createWordPieceTokenCounter()
const read = (path: string) => readFileSync(fileURLToPath(new URL(path, import.meta.url)), 'utf8')
const load = (text: string, format = 'auto') => loadWorkload(text, { format, random: createSeededRandom(1), counter })

describe('workload inputs', () => {
  it("the demo's built-in multi-user workload: Zipf users, conversations in order, within its duration", () => {
    const workload = load(read('../../config/workloads/bursty-multi-user.json'))
    expect(workload).toMatchObject({ kind: 'trace', format: 'multi-user' })
    if (workload.kind !== 'trace') return
    const users = new Map<string, number>()
    for (const r of workload.requests) users.set(r.user as string, (users.get(r.user as string) ?? 0) + 1)
    expect(users.size).toBeLessThanOrEqual(8)
    const ranked = [...users.entries()].sort((a, b) => b[1] - a[1])
    expect(ranked[0]?.[0]).toBe('user-1') // the most popular rank
    expect(workload.requests.every((r) => r.arrivalMs <= 12_000)).toBe(true)
    const rounds = new Map<string, number[]>()
    for (const r of workload.requests)
      rounds.set(r.conversationId as string, [...(rounds.get(r.conversationId as string) ?? []), r.round as number])
    for (const list of rounds.values()) expect(list).toEqual(list.map((_, i) => i))
    // Same seed, same workload.
    expect(load(read('../../config/workloads/bursty-multi-user.json'))).toEqual(workload)
  })

  it('detects vLLM conversation JSON and ShareGPT by content, and refuses a format that does not match', () => {
    expect(load(read('./fixtures/generate_multi_turn.json'))).toMatchObject({
      kind: 'conversations',
      format: 'generate-conversations',
      commonPrefixTokens: 20,
    })
    const sharegpt = load(read('./fixtures/sharegpt.json'))
    expect(sharegpt).toMatchObject({ kind: 'conversations', format: 'sharegpt' })
    if (sharegpt.kind !== 'conversations') return
    expect(sharegpt.conversations.map((c) => c.turns.length)).toEqual([2, 1])
    expect(sharegpt.conversations[1]?.turns[0]).toEqual({ userText: 'Say hello.', userTokens: 3, outputTokens: 2 })
    expect(sharegpt.skipped).toHaveLength(1)
    expect(() => load(read('./fixtures/burstgpt.csv'), 'sharegpt')).toThrow(/is not a sharegpt JSON document/)
    expect(() => load('{"filetype": "generate_conversations", "num_conversations": 0}')).toThrow(
      /num_conversations must be a positive integer/,
    )
  })

  it('a trace run closed-loop becomes its conversations, rounds in order', () => {
    const workload = load(read('./fixtures/conversation.txt'))
    if (workload.kind !== 'trace') throw new TypeError('expected a trace')
    const conversations = traceToConversations(workload.requests)
    expect(conversations.map((c) => [c.id, c.user, c.turns.length])).toEqual([
      ['1#1', '1', 3],
      ['2#1', '2', 2],
      ['3#1', '3', 2],
    ])
    // A turn holds content tokens: the trace's new-turn length less the two chat markers.
    expect(conversations[0]?.turns[0]).toEqual({ userTokens: 38, outputTokens: 12 })
  })
})
