import { describe, expect, it } from 'vitest'
import { createManualClock, createSeededRandom, randomInt } from '../../src/core/index.js'
import { DEFAULT_FAULTS } from '../../src/sim/index.js'
import { createEngine, type EngineRequest } from '../../src/sim/engine.js'
import { createSimMetrics } from '../../src/sim/metrics.js'
import { createWordPieceTokenCounter } from '../../src/tokens/index.js'

/**
 * A seeded random workload on a manual clock — arrivals, shared prefixes, aborts, a pool small enough to
 * preempt — checked against the engine's invariants after every step: nothing is lost or duplicated, the
 * batch and pool bounds hold, and everything drains to an empty cache.
 */
interface Tracked {
  request: EngineRequest
  target: number
  max: number
  tokens: number
  lastTokenAt: number
  finished: string | null
  aborted: boolean
}

function runWorkload(seed: number, enablePrefixCaching: boolean, numCpuBlocks = 0): void {
  const random = createSeededRandom(seed)
  const clock = createManualClock()
  const metrics = createSimMetrics()
  const numGpuBlocks = 120
  const maxNumSeqs = 12
  const engine = createEngine({
    clock,
    random: createSeededRandom(seed + 1),
    tokenCounter: createWordPieceTokenCounter(),
    metrics,
    numGpuBlocks,
    blockSize: 16,
    maxNumSeqs,
    maxNumBatchedTokens: 512,
    enablePrefixCaching,
    latency: { stepFixedMs: 5, prefillTokenMs: 0.01, runningSeqMs: 0.1, contextTokenMs: 0 },
    faults: () => DEFAULT_FAULTS,
    offload: numCpuBlocks === 0 ? null : { numCpuBlocks, loadMsPerBlock: 0.5, bytesPerBlock: 16 * 1024 },
  })
  const sharedPrefixes = [0, 1, 2].map((p) => Array.from({ length: 64 }, (_, i) => 10_000 * (p + 1) + i))
  let nextId = 1_000_000
  const tracked: Tracked[] = []
  const failures: string[] = []

  const submit = (): void => {
    const promptTokens = randomInt(random, 20, 400)
    const prompt =
      random.next() < 0.5
        ? [...sharedPrefixes[randomInt(random, 0, 2)]!, ...Array.from({ length: promptTokens }, () => nextId++)]
        : Array.from({ length: promptTokens }, () => nextId++)
    const max = randomInt(random, 1, 300)
    const target = randomInt(random, 1, max)
    const t: Tracked = {
      request: undefined as unknown as EngineRequest,
      target,
      max,
      tokens: 0,
      lastTokenAt: -1,
      finished: null,
      aborted: false,
    }
    t.request = engine.add(
      { promptTokenIds: prompt, maxTokens: max, targetTokens: target },
      {
        onToken(_text, n) {
          if (t.aborted || t.finished !== null) failures.push(`token after the end of request ${t.request.id}`)
          if (n !== t.tokens + 1) failures.push(`request ${t.request.id} got token ${n} after ${t.tokens}`)
          if (clock.now() === t.lastTokenAt) failures.push(`request ${t.request.id} got two tokens in one step`)
          t.tokens = n
          t.lastTokenAt = clock.now()
        },
        onFinish(reason) {
          if (t.finished !== null) failures.push(`request ${t.request.id} finished twice`)
          t.finished = reason
        },
      },
    )
    tracked.push(t)
  }

  for (let tick = 0; tick < 4000; tick++) {
    if (tick < 2500 && random.next() < 0.08) submit()
    if (random.next() < 0.01 && tracked.length > 0) {
      const victim = tracked[randomInt(random, 0, tracked.length - 1)]!
      if (victim.finished === null && !victim.aborted) {
        victim.aborted = true
        victim.request.abort()
      }
    }
    clock.advance(5)
    const state = engine.state()
    if (state.running > maxNumSeqs) failures.push(`running ${state.running} > max_num_seqs`)
    if (state.usedBlocks < 0 || state.usedBlocks > numGpuBlocks - 1)
      failures.push(`usedBlocks ${state.usedBlocks} out of range`)
    if (state.usedBlocks + state.freeBlocks !== numGpuBlocks - 1) failures.push('used + free != usable blocks')
    // Every running request holds a block for every token computed; without sharing (no prefix caching)
    // the pool's used blocks are exactly the blocks the batch holds.
    const batch = engine.inspect()
    for (const r of batch) {
      if (r.blocks < Math.ceil(r.computedTokens / 16))
        failures.push(`request ${r.id} computed ${r.computedTokens} tokens in ${r.blocks} blocks`)
    }
    const held = batch.reduce((sum, r) => sum + r.blocks, 0)
    // Requests loading from the CPU tier hold blocks outside the batch.
    if (numCpuBlocks === 0 && (enablePrefixCaching ? state.usedBlocks > held : state.usedBlocks !== held))
      failures.push(`pool uses ${state.usedBlocks}, batch holds ${held}`)
    if (state.cpuBlocks > numCpuBlocks) failures.push(`CPU tier holds ${state.cpuBlocks} > ${numCpuBlocks}`)
    const live = tracked.filter((t) => t.finished === null && !t.aborted).length
    if (state.running + state.waiting !== live)
      failures.push(`engine holds ${state.running + state.waiting}, ${live} live`)
    if (failures.length > 0) break
  }
  clock.advance(600_000)

  expect(failures).toEqual([])
  expect(engine.state()).toMatchObject({ running: 0, waiting: 0, usedBlocks: 0, freeBlocks: numGpuBlocks - 1 })
  const completed = tracked.filter((t) => !t.aborted)
  for (const t of completed) {
    expect(t.tokens).toBe(t.target)
    expect(t.finished).toBe(t.target >= t.max ? 'length' : 'stop')
  }
  for (const t of tracked.filter((t) => t.aborted)) expect(t.finished).toBeNull()
  expect(metrics.generationTokens).toBe(tracked.reduce((sum, t) => sum + t.tokens, 0))
  expect(metrics.requestSuccess.abort).toBe(tracked.length - completed.length)
  expect(metrics.requestSuccess.stop + metrics.requestSuccess.length).toBe(completed.length)
  // The pool is small enough that the workload must have preempted, or the test proves little.
  expect(metrics.preemptions).toBeGreaterThan(0)
  if (enablePrefixCaching) expect(metrics.prefixCacheHits).toBeGreaterThan(0)
  if (numCpuBlocks > 0) {
    // Prefixes left the small GPU pool and came back from the tier, and every load was counted.
    expect(metrics.externalPrefixCacheHits).toBeGreaterThan(0)
    expect(metrics.transfers.CPU_to_GPU.bytes).toBeGreaterThan(0)
  }
}

describe('engine invariants under a random workload', () => {
  for (const seed of [1, 2, 3]) {
    it(`holds them with prefix caching (seed ${seed})`, () => runWorkload(seed, true))
    it(`holds them without prefix caching (seed ${seed})`, () => runWorkload(seed, false))
    it(`holds them with a CPU tier (seed ${seed})`, () => runWorkload(seed, true, 60))
    it(`holds them with a CPU tier and no GPU prefix cache (seed ${seed})`, () => runWorkload(seed, false, 60))
  }
})
