import { describe, expect, it } from 'vitest'
import { createManualClock, createSeededRandom } from '../../src/core/index.js'
import { createEngine, type EngineOffload } from '../../src/sim/engine.js'
import { createSimMetrics } from '../../src/sim/metrics.js'
import { DEFAULT_FAULTS } from '../../src/sim/index.js'
import { createWordPieceTokenCounter } from '../../src/tokens/index.js'

/**
 * The CPU offloading tier at the engine level, on a stepped clock: conversations whose history no longer fits
 * the GPU cache find it in the tier on their next turn, load it instead of recomputing it, and so reach their
 * first token sooner; the tier never holds more than its size, and the counters agree with what moved.
 */
const BLOCK = 16
const BYTES_PER_BLOCK = BLOCK * 1024 // a small model: 1 KiB of KV per token
const LATENCY = { stepFixedMs: 1, prefillTokenMs: 0.05, runningSeqMs: 0, contextTokenMs: 0 }

interface Turn {
  prompt: number[]
  ttftMs: number | null
  done: boolean
}

function setup(offload: EngineOffload | null, numGpuBlocks = 65) {
  const clock = createManualClock()
  const metrics = createSimMetrics()
  const engine = createEngine({
    clock,
    random: createSeededRandom(1),
    tokenCounter: createWordPieceTokenCounter(),
    metrics,
    numGpuBlocks, // 64 usable blocks: 1,024 tokens, about two conversations' history
    blockSize: BLOCK,
    maxNumSeqs: 8,
    maxNumBatchedTokens: 2048,
    enablePrefixCaching: true,
    latency: LATENCY,
    faults: () => DEFAULT_FAULTS,
    offload,
  })
  let maxCpuBlocks = 0
  /** Run one request to its end, one emulated ms at a time, recording its time to first token. */
  const run = (prompt: number[], outputTokens: number): Turn => {
    const turn: Turn = { prompt, ttftMs: null, done: false }
    const start = clock.now()
    engine.add(
      { promptTokenIds: prompt, maxTokens: outputTokens, targetTokens: outputTokens },
      {
        onToken(_text, n) {
          if (n === 1) turn.ttftMs = clock.now() - start
          return undefined
        },
        onFinish() {
          turn.done = true
        },
      },
    )
    for (let ms = 0; !turn.done; ms++) {
      if (ms > 10_000) throw new Error('the request did not finish')
      clock.advance(1)
      maxCpuBlocks = Math.max(maxCpuBlocks, engine.state().cpuBlocks)
    }
    return turn
  }
  return { clock, metrics, engine, run, maxCpuBlocks: () => maxCpuBlocks }
}

/** Conversation `c`'s first prompt: 400 tokens (25 full blocks), distinct from every other's. */
const history = (c: number): number[] => Array.from({ length: 400 }, (_, i) => 10_000 * (c + 1) + i)
/** Its second turn: the history again, then 64 new tokens. */
const nextTurn = (c: number): number[] => [
  ...history(c),
  ...Array.from({ length: 64 }, (_, i) => 900_000 + 100 * c + i),
]

function multiTurn(offload: EngineOffload | null) {
  const sim = setup(offload)
  const conversations = 6
  for (let c = 0; c < conversations; c++) sim.run(history(c), 8)
  const secondTurns = Array.from({ length: conversations }, (_, c) => sim.run(nextTurn(c), 8))
  return { ...sim, secondTurns }
}

describe('KV offloading tier (engine, stepped clock)', () => {
  it('later turns hit the CPU tier and reach their first token sooner than without it', () => {
    const without = multiTurn(null)
    const offload = { numCpuBlocks: 256, loadMsPerBlock: 0.1, bytesPerBlock: BYTES_PER_BLOCK }
    const withTier = multiTurn(offload)

    // Without the tier the first conversations' histories were evicted by the later ones: no GPU hit left
    // for the first four (six × 25 blocks went through 64).
    const hitsWithout = without.metrics.prefixCacheHits
    expect(hitsWithout).toBeLessThan(6 * 400)
    // With it, every second turn found its whole history: on the GPU or, beyond that, in the tier.
    const m = withTier.metrics
    expect(m.prefixCacheHits + m.externalPrefixCacheHits).toBe(6 * 400)
    expect(m.externalPrefixCacheHits).toBeGreaterThanOrEqual(4 * 400)
    // External queries count every admitted request's tokens, as vLLM's connector stats.
    expect(m.externalPrefixCacheQueries).toBe(6 * 400 + 6 * 464)

    for (let c = 0; c < 4; c++) {
      const slow = without.secondTurns[c]!.ttftMs!
      const fast = withTier.secondTurns[c]!.ttftMs!
      // Recompute: 1 + 0.05 × 464 ≈ 24 ms. Load 25 blocks (2.5 ms), then compute 64 tokens (≈ 4 ms).
      expect(slow).toBeGreaterThan(20)
      expect(fast).toBeLessThan(slow / 2)
    }
    // The first conversation's history was nowhere on the GPU: its load took its full cost.
    expect(withTier.secondTurns[0]!.ttftMs!).toBeGreaterThanOrEqual(25 * 0.1)
  })

  it("counts the connector's transfers: every stored and loaded block, in bytes and seconds", () => {
    const offload = { numCpuBlocks: 256, loadMsPerBlock: 0.1, bytesPerBlock: BYTES_PER_BLOCK }
    const { metrics, engine } = multiTurn(offload)
    const loaded = metrics.externalPrefixCacheHits / BLOCK
    expect(metrics.transfers.CPU_to_GPU.bytes).toBe(loaded * BYTES_PER_BLOCK)
    expect(metrics.transfers.CPU_to_GPU.seconds).toBeCloseTo((loaded * 0.1) / 1000, 9)
    // Each second turn that loaded is one transfer.
    expect(metrics.transfers.CPU_to_GPU.size.count).toBeGreaterThanOrEqual(4)
    // Stored: every full block computed, once per hash (first turns: 25 + the answer's 0 full blocks; second
    // turns: the blocks beyond the shared history).
    const stored = metrics.transfers.GPU_to_CPU.bytes / BYTES_PER_BLOCK
    expect(stored).toBe(engine.state().cpuBlocks)
    expect(stored).toBe(6 * 25 + 6 * Math.floor((464 + 8 - 1) / BLOCK - 25))
    expect(metrics.transfers.GPU_to_CPU.seconds).toBeCloseTo((stored * 0.1) / 1000, 9)
  })

  it('never holds more than its size, and evicts least recently used first', () => {
    // 60 blocks of tier for six histories of 25: only the last two conversations' fit.
    const offload = { numCpuBlocks: 60, loadMsPerBlock: 0.1, bytesPerBlock: BYTES_PER_BLOCK }
    const sim = setup(offload)
    for (let c = 0; c < 6; c++) sim.run(history(c), 1)
    expect(sim.engine.state().cpuBlocks).toBeLessThanOrEqual(60)
    expect(sim.maxCpuBlocks()).toBeLessThanOrEqual(60)
    const hitsOf = (c: number): number => {
      const before = sim.metrics.externalPrefixCacheHits + sim.metrics.prefixCacheHits
      sim.run(nextTurn(c), 1)
      return sim.metrics.externalPrefixCacheHits + sim.metrics.prefixCacheHits - before
    }
    // The oldest conversation is gone from both tiers; the newest is all there (its blocks were touched
    // last, and the tier evicts a request's deepest blocks first).
    expect(hitsOf(0)).toBe(0)
    expect(hitsOf(5)).toBe(400)
    expect(sim.engine.state().cpuBlocks).toBeLessThanOrEqual(60)
    expect(sim.maxCpuBlocks()).toBeLessThanOrEqual(60)
  })

  it('an abort while loading releases the blocks and the tier, and the engine drains', () => {
    const offload = { numCpuBlocks: 256, loadMsPerBlock: 5, bytesPerBlock: BYTES_PER_BLOCK }
    const sim = setup(offload)
    for (let c = 0; c < 4; c++) sim.run(history(c), 1)
    const request = sim.engine.add(
      { promptTokenIds: nextTurn(0), maxTokens: 4, targetTokens: 4 },
      { onToken: () => undefined, onFinish: () => undefined },
    )
    sim.clock.advance(10) // mid-load: 25 blocks take 125 ms
    expect(sim.engine.state()).toMatchObject({ running: 0, waiting: 1 })
    expect(sim.engine.state().usedBlocks).toBeGreaterThan(0)
    request.abort()
    sim.clock.advance(500)
    expect(sim.engine.state()).toMatchObject({ running: 0, waiting: 0, usedBlocks: 0 })
    // The abandoned load did not count as a transfer, and the tier can evict those blocks again.
    expect(sim.metrics.transfers.CPU_to_GPU.size.count).toBe(0)
    expect(
      sim.engine.cpuTier!.store(
        Array.from({ length: 256 }, (_, i) => -1 - i),
        0,
        256,
      ),
    ).toBe(256)
  })
})
