import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fileURLToPath } from 'node:url'
import { createScaledClock } from '../../src/core/index.js'
import type { SimHandle } from '../../src/sim/index.js'
import { startSim } from '../../src/sim/index.js'
import { createWordPieceTokenCounter } from '../../src/tokens/index.js'
import { prepareWorkload, runWorkload, summarize } from '../../src/bench/index.js'
import type { WorkloadOptions } from '../../src/bench/index.js'

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
const counter = createWordPieceTokenCounter()
const SPEED = 20 // emulated time 20× real time: the replay and the figures use the same scaled clock

let sim: SimHandle
beforeAll(async () => {
  sim = await startSim({ speed: SPEED, logger: false, seed: 1 })
})
afterAll(async () => {
  await sim.close()
})

const options = (inputFile: string): WorkloadOptions => ({
  inputFile,
  format: 'auto',
  seed: 3,
  skipMalformed: false,
  numUsers: 4,
  userZipfAlpha: 1.2,
})

describe('end-to-end replay against the emulator', () => {
  it('replays a BurstGPT file open-loop with exact prompt and output lengths', async () => {
    const workload = await prepareWorkload(options(fixture('burstgpt.csv')), counter)
    expect(workload.kind).toBe('trace')
    const run = await runWorkload(workload, { baseUrl: sim.url, counter, clock: createScaledClock(SPEED), seed: 3 })
    expect(run.mode).toBe('open-loop')
    expect(run.records).toHaveLength(6)
    expect(run.records.every((r) => r.outcome === 'completed')).toBe(true)
    const byPrompt = [...run.records].sort((a, b) => a.scheduledMs - b.scheduledMs)
    expect(byPrompt.map((r) => r.inputNumTokens)).toEqual([120, 80, 60, 200, 45, 90])
    // 0 response tokens in the trace (a failed request) is sent as 1.
    expect(byPrompt.map((r) => r.outputNumTokens)).toEqual([30, 20, 1, 40, 15, 25])
    for (const r of run.records) {
      expect(r.ttftMs).toBeGreaterThan(0)
      expect(r.latencyMs).toBeGreaterThanOrEqual(r.ttftMs as number)
      expect(r.user).toMatch(/^user-\d$/)
    }
    const summary = summarize(run)
    expect(summary.completed).toBe(6)
    expect(summary.table.output_num_tokens['count']).toBe(6)
    // vLLM's multi-turn bench gives a single-token answer tpot_ms 0.0, so it still counts in the tpot column.
    expect(byPrompt[2]?.tpotMs).toBe(0)
    expect(summary.table.tpot_ms['count']).toBe(6)
    expect(summary.rate_429).toBe(0)
  })

  it('replays a seed-000 conversation trace with growing history', async () => {
    const workload = await prepareWorkload(options(fixture('conversation.txt')), counter)
    const run = await runWorkload(workload, { baseUrl: sim.url, counter, clock: createScaledClock(SPEED), seed: 3 })
    expect(run.records).toHaveLength(7)
    expect(run.records.every((r) => r.outcome === 'completed')).toBe(true)
    const user1 = run.records.filter((r) => r.user === '1').sort((a, b) => (a.round ?? 0) - (b.round ?? 0))
    // Round k = Σ earlier (query + response) + this query: 40; 40+12+20; 40+12+20+8+18.
    expect(user1.map((r) => r.inputNumTokens)).toEqual([40, 72, 98])
    expect(user1.map((r) => r.inputNumTurns)).toEqual([1, 3, 5])
    expect(user1.map((r) => r.outputNumTokens)).toEqual([12, 8, 10])
  })

  it('replays Mooncake hash ids as shared prefix blocks that hit the emulator prefix cache', async () => {
    const prefixHits = async (): Promise<number> => {
      const metrics = await (await fetch(`${sim.url}/metrics`)).text()
      return Number(/^vllm:prefix_cache_hits_total\{[^}]*\} (\S+)$/m.exec(metrics)?.[1])
    }
    const before = await prefixHits()
    const workload = await prepareWorkload(options(fixture('mooncake.jsonl')), counter)
    const run = await runWorkload(workload, { baseUrl: sim.url, counter, clock: createScaledClock(SPEED), seed: 3 })
    expect(run.records.every((r) => r.outcome === 'completed')).toBe(true)
    expect([...run.records].sort((a, b) => a.scheduledMs - b.scheduledMs).map((r) => r.inputNumTokens)).toEqual([
      1100, 700, 1024, 300,
    ])
    // Requests 2 and 3 start with block 0 (and 3 with block 1) of request 1: at least one 512-token block hits.
    expect((await prefixHits()) - before).toBeGreaterThanOrEqual(496)
  })
})
