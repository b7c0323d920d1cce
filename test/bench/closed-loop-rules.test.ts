import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createSystemClock } from '../../src/core/index.js'
import { createWordPieceTokenCounter } from '../../src/tokens/index.js'
import { createPythonRandom, runConversations } from '../../src/bench/index.js'
import type { Conversation, RequestRecord } from '../../src/bench/index.js'
import type { RecordingServer } from './recording-server.js'
import { startRecordingServer, streamAnswer } from './recording-server.js'

const counter = createWordPieceTokenCounter()
let server: RecordingServer
beforeAll(async () => {
  server = await startRecordingServer()
})
afterAll(async () => {
  await server.close()
})
afterEach(() => {
  server.requests.length = 0
  delete server.respond
})

/** Conversations with these numbers of user turns, 2 answer tokens each. */
const conversations = (turns: readonly number[]): Conversation[] =>
  turns.map((n, c) => ({
    id: `c${c}`,
    user: `u${c}`,
    prefixTokens: 0,
    turns: Array.from({ length: n }, () => ({ userTokens: 3, outputTokens: 2 })),
  }))

const run = (turns: readonly number[], extra: Partial<Parameters<typeof runConversations>[1]> = {}) =>
  runConversations(conversations(turns), {
    baseUrl: server.url,
    counter,
    clock: createSystemClock(),
    seed: 0,
    numClients: 1,
    ...extra,
  })

const order = (records: readonly RequestRecord[]) => records.map((r) => `${r.conversationId}:${r.round}`)

describe('closed loop as vLLM runs it', () => {
  it('round robin in the order of vLLM deque: newest conversation first, an unfinished one back at the end', async () => {
    const result = await run([3, 1, 2, 2], { maxActiveConversations: 2 })
    // c0 and c1 open; pop c1 (done) → c2 opens and goes first; c2, c0 alternate …; every turn is sent (rule all).
    expect(order(result.records)).toEqual(['c1:0', 'c2:0', 'c0:0', 'c2:1', 'c3:0', 'c0:1', 'c3:1', 'c0:2'])
    expect(result.unfinishedConversations).toBe(0)
  })

  it('--stop-rule vllm: a client that finds the queue empty quits, leaving its open conversations', async () => {
    const all = await run([3, 1, 2, 2], { maxActiveConversations: 2, stopRule: 'all' })
    const vllm = await run([3, 1, 2, 2], { maxActiveConversations: 2, stopRule: 'vllm' })
    expect(all.records).toHaveLength(3 + 1 + 2 + 2)
    // After c3 finishes the client asks for a new conversation, gets the end-of-work signal and stops: c0's last
    // turn is never sent.
    expect(order(vllm.records)).toEqual(['c1:0', 'c2:0', 'c0:0', 'c2:1', 'c3:0', 'c0:1', 'c3:1'])
    expect(vllm.unfinishedConversations).toBe(1)
  })

  it('--stop-rule vllm: once one client quits, the others stop after the request they have in flight', async () => {
    // Two clients with one conversation each: c0 has 1 turn, c1 has 5. The answer to c1's first turn is held
    // until c0's client has its answer, so by then that client has quit and raised the stop.
    const rule = async (stopRule: 'all' | 'vllm') => {
      let c0Done: () => void = () => {}
      const c0Answered = new Promise<void>((resolve) => {
        c0Done = resolve
      })
      let held = false
      server.respond = (request, res) => {
        // Only c1's first turn is held: until c0's record exists, then one macrotask more, so that c0's client
        // has looped on (all in microtasks) and quit before c1's answer arrives.
        if (held || request.headers['x-user-id'] !== 'u1') return false
        held = true
        void c0Answered.then(() => setImmediate(() => streamAnswer(res, request.body)))
        return true
      }
      return run([1, 5], {
        numClients: 2,
        maxActiveConversations: 2,
        stopRule,
        onRecord: (r) => {
          if (r.conversationId === 'c0') c0Done()
        },
      })
    }
    const vllm = await rule('vllm')
    expect(order(vllm.records).sort()).toEqual(['c0:0', 'c1:0'])
    const all = await rule('all')
    expect(all.records).toHaveLength(6)
  })

  it('--warmup-step sends every first turn first and leaves those out of the figures', async () => {
    const result = await run([3, 1, 2], { maxActiveConversations: 2, warmupStep: true })
    expect(server.requests).toHaveLength(3 + 3) // 3 warm-up turns, then the 3 turns left (2 of c0, 1 of c2)
    expect(server.requests.slice(0, 3).map((r) => (r.body['messages'] as unknown[]).length)).toEqual([1, 1, 1])
    expect(result.warmup).toMatchObject({ requests: 3, completed: 3 })
    expect(result.records.map((r) => r.round).sort()).toEqual([1, 1, 2])
    // The run proper carries the warm-up's answer in its history.
    expect(result.records.every((r) => r.inputNumTurns === 2 * (r.round as number) + 1)).toBe(true)
  })

  it("--conversation-sampling random picks with Python's random.choice, seeded as vLLM seeds client 0", async () => {
    const result = await run([2, 2, 2], { maxActiveConversations: 3, conversationSampling: 'random', seed: 5 })
    // Replay vLLM's client on the same generator: random.seed(5 + 0 + 1), random.choice(list(active)).
    const python = createPythonRandom(6)
    const active = ['c0', 'c1', 'c2']
    const left = new Map(active.map((c) => [c, 2]))
    const expected: string[] = []
    while (active.length > 0) {
      const id = active[python.choiceIndex(active.length)] as string
      expected.push(`${id}:${2 - (left.get(id) as number)}`)
      left.set(id, (left.get(id) as number) - 1)
      if (left.get(id) === 0) active.splice(active.indexOf(id), 1)
    }
    expect(order(result.records)).toEqual(expected)
    expect(order(result.records)).not.toEqual(['c2:0', 'c1:0', 'c0:0', 'c2:1', 'c1:1', 'c0:1'])
  })

  it("counts input_num_tokens as the server reports it and, beside it, vLLM's content-only count", async () => {
    const result = await run([2])
    const [first, second] = result.records
    // The recording server reports 1000 + messages as prompt_tokens: the bench takes the server's word.
    expect(first).toMatchObject({ inputNumTokens: 1001, inputNumTokensSource: 'server', inputContentTokens: 3 })
    // Round 2: two user turns of 3 tokens and the answer " word word" (2 tokens), no role markers.
    expect(second).toMatchObject({ inputNumTokens: 1003, inputContentTokens: 3 + 2 + 3 })
  })
})
