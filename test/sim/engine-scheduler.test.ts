import { describe, expect, it } from 'vitest'
import { createManualClock, createSeededRandom } from '../../src/core/index.js'
import { DEFAULT_FAULTS, DEFAULT_LATENCY } from '../../src/sim/index.js'
import { createEngine, type Engine, type EngineSink } from '../../src/sim/engine.js'
import { createSimMetrics } from '../../src/sim/metrics.js'
import { createWordPieceTokenCounter } from '../../src/tokens/index.js'

/**
 * The scheduler and step-time model on a manual clock: no sockets, no sleeping, exact times. These pin the
 * vLLM V1 behaviours an admission controller reacts to.
 */
interface Recorder extends EngineSink {
  tokens: number
  tokenTimes: number[]
  finished: string | null
}

function setup(overrides: Partial<Parameters<typeof createEngine>[0]> = {}) {
  const clock = createManualClock()
  const metrics = createSimMetrics()
  const engine = createEngine({
    clock,
    random: createSeededRandom(1),
    tokenCounter: createWordPieceTokenCounter(),
    metrics,
    numGpuBlocks: 1000,
    blockSize: 16,
    maxNumSeqs: 256,
    maxNumBatchedTokens: 8192,
    enablePrefixCaching: true,
    latency: { ...DEFAULT_LATENCY },
    faults: () => DEFAULT_FAULTS,
    ...overrides,
  })
  const recorder = (): Recorder => {
    const r: Recorder = {
      tokens: 0,
      tokenTimes: [],
      finished: null,
      onToken() {
        r.tokens++
        r.tokenTimes.push(clock.now())
      },
      onFinish(reason) {
        r.finished = reason
      },
    }
    return r
  }
  // Distinct prompts per request so prefix caching stays out of the way unless a test wants it.
  let nextPromptId = 1_000_000
  const prompt = (tokens: number): number[] => Array.from({ length: tokens }, () => nextPromptId++)
  const add = (engineUnderTest: Engine, promptTokens: number, outputTokens: number) => {
    const sink = recorder()
    const request = engineUnderTest.add(
      { promptTokenIds: prompt(promptTokens), maxTokens: outputTokens, targetTokens: outputTokens },
      sink,
    )
    return { sink, request }
  }
  return { clock, metrics, engine, add: (p: number, o: number) => add(engine, p, o) }
}

describe('engine scheduler and step-time model', () => {
  it('defaults look like an 8B model on an H100: tens of ms TTFT for 1k tokens idle, 10–30 ms per token at batch 64', () => {
    const { clock, engine, add } = setup()
    const { sink } = add(1000, 3)
    clock.advance(30)
    expect(sink.tokens).toBe(0)
    clock.advance(10)
    expect(sink.tokens).toBe(1)
    const ttft = sink.tokenTimes[0]!
    expect(ttft).toBeGreaterThanOrEqual(20)
    expect(ttft).toBeLessThan(60)
    clock.advance(100)
    expect(sink.finished).toBe('length')
    engine.close()

    const batch = setup({ numGpuBlocks: 8192 })
    const sinks = Array.from({ length: 64 }, () => batch.add(1000, 20).sink)
    batch.clock.advance(60_000)
    // 64k prompt tokens prefill over 8 steps of 8,192; from token 9 on, every sequence is decoding together.
    const gaps = sinks.flatMap((s) => s.tokenTimes.slice(10, 13).map((t, i) => t - s.tokenTimes[i + 9]!))
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(10)
    expect(Math.max(...gaps)).toBeLessThanOrEqual(30)
    expect(sinks.every((s) => s.finished === 'length')).toBe(true)
  })

  it('chunks a prefill longer than max_num_batched_tokens over several steps', () => {
    const { clock, engine, add } = setup({
      maxNumBatchedTokens: 256,
      latency: { stepFixedMs: 10, prefillTokenMs: 0, runningSeqMs: 0, contextTokenMs: 0 },
    })
    const { sink } = add(1000, 2)
    // Blocks are allocated when a chunk is scheduled: the third chunk, scheduled at t=20, brings 768 tokens.
    clock.advance(25)
    expect(engine.state().usedBlocks).toBe(768 / 16)
    clock.advance(10)
    expect(sink.tokens).toBe(0)
    expect(engine.state().usedBlocks).toBe(Math.ceil(1000 / 16))
    clock.advance(5)
    expect(sink.tokens).toBe(1) // 4 steps of 256, 256, 256, 232 tokens
    expect(sink.tokenTimes[0]).toBe(40)
  })

  it('bounds the batch by max_num_seqs and admits first come, first served', () => {
    const { clock, engine, add } = setup({ maxNumSeqs: 2 })
    const requests = [add(10, 5), add(10, 5), add(10, 5), add(10, 5)]
    clock.advance(1)
    expect(engine.state()).toMatchObject({ running: 2, waiting: 2 })
    clock.advance(10_000)
    const firstTokens = requests.map((r) => r.sink.tokenTimes[0]!)
    expect(firstTokens[0]).toBe(firstTokens[1])
    expect(firstTokens[2]).toBeGreaterThan(firstTokens[1]!)
    expect(firstTokens[3]).toBe(firstTokens[2])
  })

  it('keeps a waiting head that does not fit at the head (no smaller request overtakes it)', () => {
    const { clock, engine, add } = setup({
      numGpuBlocks: 101,
      latency: { stepFixedMs: 10, prefillTokenMs: 0, runningSeqMs: 0, contextTokenMs: 0 },
    })
    add(1000, 200) // 63 blocks, growing
    clock.advance(1)
    const big = add(1000, 5) // needs 63 more: does not fit
    const small = add(16, 5) // would fit
    clock.advance(100)
    expect(big.sink.tokens).toBe(0)
    expect(small.sink.tokens).toBe(0)
    expect(engine.state().waiting).toBe(2)
  })

  it('preempts the most recently scheduled request when a running one needs a block, and recomputes it later', () => {
    const { clock, engine, metrics, add } = setup({
      numGpuBlocks: 11, // 10 usable blocks = 160 tokens
      latency: { stepFixedMs: 10, prefillTokenMs: 0, runningSeqMs: 0, contextTokenMs: 0 },
    })
    const first = add(64, 60) // 4 blocks now, 8 at the end
    const second = add(64, 60)
    clock.advance(1)
    expect(engine.state()).toMatchObject({ running: 2, usedBlocks: 8 })
    // Both grow; when the pool runs dry the second (scheduled last) is preempted, not the first.
    while (metrics.preemptions === 0) clock.advance(10)
    expect(engine.state()).toMatchObject({ running: 1, waiting: 1 })
    const tokensOfSecondAtPreemption = second.sink.tokens
    expect(first.sink.finished).toBeNull()
    clock.advance(100_000)
    expect(first.sink.finished).toBe('length')
    expect(second.sink.finished).toBe('length')
    // Recompute keeps the tokens already streamed: the client sees each token once.
    expect(second.sink.tokens).toBe(60)
    expect(tokensOfSecondAtPreemption).toBeGreaterThan(0)
    expect(engine.state()).toMatchObject({ running: 0, waiting: 0, usedBlocks: 0 })
    expect(engine.state().preemptions).toBe(metrics.preemptions)
  })

  it('uses one timer per step whatever the number of requests', () => {
    const { clock, add } = setup()
    for (let i = 0; i < 200; i++) add(50, 10)
    clock.advance(1)
    expect(clock.pendingTimers()).toBe(1)
  })

  it('abort frees blocks at once and lets the waiting head in', () => {
    const { clock, engine, add } = setup({
      numGpuBlocks: 65,
      latency: { stepFixedMs: 10, prefillTokenMs: 0, runningSeqMs: 0, contextTokenMs: 0 },
    })
    const hog = add(1000, 500)
    clock.advance(1)
    const next = add(500, 5)
    clock.advance(50)
    expect(engine.state().waiting).toBe(1)
    hog.request.abort()
    expect(engine.state().running).toBe(0)
    clock.advance(50)
    expect(next.sink.tokens).toBeGreaterThan(0)
    expect(hog.sink.finished).toBeNull()
  })
})
