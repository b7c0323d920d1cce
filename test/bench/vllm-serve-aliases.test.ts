import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { SimHandle } from '../../src/sim/index.js'
import { startSim } from '../../src/sim/index.js'
import { fixture, runBench } from './cli-harness.js'

/** `vllm bench serve`'s habits, accepted by `kvgate bench`. */
const SPEED = 20
const dir = mkdtempSync(join(tmpdir(), 'kvgate-aliases-'))
let sim: SimHandle
beforeAll(async () => {
  sim = await startSim({ speed: SPEED, logger: false })
})
afterAll(async () => {
  await sim.close()
  rmSync(dir, { recursive: true, force: true })
})

describe("vllm bench serve's flags", () => {
  it('--num-prompts, --goodput, --max-concurrency and --save-result', async () => {
    const { stdout, exitCode } = await runBench([
      '-i',
      fixture('burstgpt.csv'),
      '-u',
      sim.url,
      '--speed',
      String(SPEED),
      '--num-prompts',
      '3',
      '--goodput',
      'ttft:600000',
      'e2el:600000',
      '--max-concurrency',
      '1',
      '--save-result',
      '--result-dir',
      dir,
    ])
    expect(exitCode).toBeUndefined()
    expect(stdout).toMatch(/requests = 3 {2}completed = 3/)
    expect(stdout).toContain('slo = ttft:600000,e2el:600000')
    const [file] = readdirSync(dir)
    expect(file).toMatch(/^kvgate-bench-traceqps-concurrency1-kvgate-sim-\d{8}-\d{6}\.json$/)
    const saved = JSON.parse(readFileSync(join(dir, file as string), 'utf8')) as {
      requests: { startMs: number; endMs: number }[]
    }
    expect(saved.requests).toHaveLength(3)
    expect(stdout).toContain(`result: ${join(dir, file as string)}`)
  })
})
