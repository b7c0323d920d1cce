import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { fixture, runBench } from './cli-harness.js'

const dir = mkdtempSync(join(tmpdir(), 'kvgate-compare-fleet-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

interface SetupJson {
  name: string
  backends: number
  summary: {
    requests: number
    completed: number
    rejected_429: number
    failed: number
    prefix_cache_hit_rate: number | null
    kv_balance: number
    ttft_p50_ms: number | null
    ttft_p99_ms: number | null
  }
}

/**
 * `kvgate bench compare --backends 2 --routing …`: one setup per routing, each over two fresh emulators
 * (direct through a round-robin balancer), plus the one large emulator; every summary carries the fleet's
 * figures, and prefix-aware routing, which keeps each conversation on its replica, hits the prefix cache
 * more often than most-room, which scatters them.
 */
describe('kvgate bench compare over a fleet', () => {
  it('runs one setup per routing over N emulators and reports hit rate and KV balance', async () => {
    const json = join(dir, 'out.json')
    const report = join(dir, 'report.html')
    const { stdout, exitCode } = await runBench([
      'compare',
      '-i',
      fixture('fleet_multi_turn.json'),
      '--num-clients',
      '4',
      '--policies',
      'vtc',
      '--backends',
      '2',
      '--routing',
      'most-room,prefix-aware',
      '--reference-single-backend',
      '--num-gpu-blocks',
      '512',
      '--speed',
      '20',
      '--output-json',
      json,
      '--report',
      report,
    ])
    expect(exitCode).toBeUndefined()
    expect(stdout).toMatch(/prefix_cache_hit_rate\s+kv_balance/)
    const { setups } = JSON.parse(readFileSync(json, 'utf8')) as { setups: SetupJson[] }
    expect(setups.map((s) => [s.name, s.backends])).toEqual([
      ['direct', 2],
      ['vtc/most-room', 2],
      ['vtc/prefix-aware', 2],
      ['vtc/single-2x-blocks', 1],
    ])
    for (const s of setups) {
      expect(s.summary.requests).toBe(48) // 8 conversations of 6 turns
      expect(s.summary.completed + s.summary.rejected_429 + s.summary.failed).toBe(48)
      expect(s.summary.prefix_cache_hit_rate).toBeGreaterThan(0)
      expect(s.summary.kv_balance).toBeGreaterThanOrEqual(0)
      expect(s.summary.ttft_p50_ms).toBeGreaterThan(0)
    }
    const rate = (name: string) => setups.find((s) => s.name === name)?.summary.prefix_cache_hit_rate ?? 0
    expect(rate('vtc/prefix-aware')).toBeGreaterThan(rate('vtc/most-room'))
    expect(setups.find((s) => s.name === 'vtc/single-2x-blocks')?.summary.kv_balance).toBe(0)
    const html = readFileSync(report, 'utf8')
    expect(html).toContain('Prefix-cache hit rate and KV balance')
    expect((html.match(/<rect class="bar"/g) ?? []).length).toBe(4 + 3) // hit rate of 4 setups, balance of 3
  }, 120_000)
})
