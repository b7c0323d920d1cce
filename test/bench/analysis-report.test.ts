import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { fixture, runBench } from './cli-harness.js'
import { createAnalyzeCommand } from '../../src/bench/analyze-command.js'
import type { WorkloadAnalysis } from '../../src/bench/index.js'
import { CHROMIUM, dumpDom, renderCheck } from './support/chromium.js'

/**
 * `kvgate bench analyze` on the bundled seed-000-format day of chat (bench/chat-day-trace.ts: 1,500 users,
 * 7,099 requests), as the acceptance command runs it, then its report opened in headless Chromium.
 */
const dir = mkdtempSync(join(tmpdir(), 'kvgate-analyze-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const bench = runBench

const POLICIES = ['fifo', 'lru', 'queue-aware', 'belady']

describe('kvgate bench analyze: conversation KV', () => {
  const json = join(dir, 'out.json')
  const report = join(dir, 'report.html')
  let run: Awaited<ReturnType<typeof bench>>

  it('writes a hit rate per policy and size: Belady ≥ the others, each rising with size', async () => {
    run = await bench([
      'analyze',
      fixture('conversation-day.txt'),
      '--host-memory-gb',
      '50,100,200',
      '--block-sizes',
      '16',
      '--output-json',
      json,
      '--report',
      report,
    ])
    expect(run.exitCode, run.stderr).toBeUndefined()
    const a = JSON.parse(readFileSync(json, 'utf8')) as WorkloadAnalysis
    const kv = a.conversationKv
    expect(kv?.model).toMatchObject({ model: 'opt-13b', bytesPerToken: 819_200 })
    expect(kv?.requests).toBe(7099)
    expect(kv?.hostMemory.sizes.map((s) => s.sizeGiB)).toEqual([50, 100, 200])
    const rate = (size: number, policy: string) =>
      kv?.hostMemory.sizes[size]?.policies.find((p) => p.policy === policy)?.hitRate as number
    for (let size = 0; size < 3; size++) {
      expect(kv?.hostMemory.sizes[size]?.policies.map((p) => p.policy)).toEqual(POLICIES)
      for (const policy of POLICIES) {
        expect(rate(size, policy)).toBeGreaterThan(0)
        expect(rate(size, 'belady')).toBeGreaterThanOrEqual(rate(size, policy))
      }
    }
    // Rising with size: guaranteed for LRU and Belady; FIFO and queue-aware on this trace (see the docs).
    for (const policy of POLICIES) {
      expect(rate(1, policy)).toBeGreaterThan(rate(0, policy))
      expect(rate(2, policy)).toBeGreaterThanOrEqual(rate(1, policy))
    }
    // 50 GiB is tight on this trace: the policies differ, and knowing the queue helps.
    expect(rate(0, 'belady') - rate(0, 'fifo')).toBeGreaterThan(0.1)
    expect(rate(0, 'queue-aware')).toBeGreaterThan(rate(0, 'lru'))
  })

  it('puts the reuse distance CDF, the per-user rounds and the other figures in the JSON', () => {
    const a = JSON.parse(readFileSync(json, 'utf8')) as WorkloadAnalysis
    const kv = a.conversationKv
    expect(Object.keys(kv ?? {})).toEqual([
      'model',
      'order',
      'requests',
      'conversations',
      'returningTurns',
      'users',
      'history',
      'reuseDistance',
      'hostMemory',
      'hitRateByReuseDistance',
      'reuseDistanceLowerBound',
      'hitRateOverTime',
    ])
    const cdf = kv?.reuseDistance.cdfBytes ?? []
    expect(cdf.length).toBeGreaterThan(50)
    expect(cdf[cdf.length - 1]?.[1]).toBe(1)
    expect(cdf.every(([v, f], i) => i === 0 || (v >= (cdf[i - 1]?.[0] ?? 0) && f > (cdf[i - 1]?.[1] ?? 0)))).toBe(true)
    expect(kv?.users.count).toBe(1500)
    expect(kv?.users.roundsHistogram.reduce((n, h) => n + h.users, 0)).toBe(1500)
    expect(kv?.users.roundsHistogram.reduce((n, h) => n + h.rounds * h.users, 0)).toBe(7099)
    expect(kv?.users.durationSec?.['count']).toBe(1500)
    expect(kv?.reuseDistanceLowerBound.windows.length).toBeGreaterThanOrEqual(3)
    expect(kv?.hitRateByReuseDistance.buckets.reduce((n, b) => n + b.turns, 0)).toBe(kv?.returningTurns)
    expect(run.stdout).toMatch(/^Host-memory tier hit rate/m)
    expect(run.stdout).toMatch(/^50 GiB\s+\d+\.\d% \(\d+\.\d%\)/m)
    expect(run.stdout).toMatch(/^reuse_distance\s+5373\s/m)
  })

  it('draws the new charts in the report, every one of them in Chromium', () => {
    const html = readFileSync(report, 'utf8')
    for (const title of [
      'Rounds per user',
      'Conversation duration per user (CDF)',
      'History KV per request (CDF)',
      'Weighted reuse distance (CDF)',
      'Host-memory tier hit rate (history bytes)',
      'Hit rate by weighted reuse distance, 50 GiB',
      'Reuse distance lower bound by previous answer length',
    ]) {
      expect(html).toContain(`aria-label="${title}"`)
    }
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=|https?:\/\/(?!www\.w3\.org)/)
    if (CHROMIUM === undefined) {
      expect(process.env['CI'], 'chromium must be installed in CI').toBeUndefined()
      return
    }
    const dom = dumpDom(report, dir)
    const check = renderCheck(dom)
    expect(check, 'the report script ran and measured the charts').toBeDefined()
    // 4 policies × (1 hit-rate bar group of 3 sizes + 3 by-distance lines + 3 over-time lines) at least.
    expect(check?.series).toBeGreaterThan(4 * 3 + 4 * 6)
    expect(check?.drawn).toBe(check?.series)
  })

  it('takes a conversation JSON in the closed-loop order of the given clients, and another model', async () => {
    const out = join(dir, 'conv.json')
    const r = await bench([
      'analyze',
      fixture('generate_multi_turn.json'),
      '--num-clients',
      '2',
      '--max-active-conversations',
      '4',
      '--kv-model',
      'llama-3-8b',
      '--host-memory-gb',
      '0.001',
      '--output-json',
      out,
    ])
    expect(r.exitCode, r.stderr).toBeUndefined()
    const kv = (JSON.parse(readFileSync(out, 'utf8')) as WorkloadAnalysis).conversationKv
    expect(kv?.order).toBe('closed-loop')
    expect(kv?.closedLoop).toEqual({ numClients: 2, maxActiveConversations: 4 })
    expect(kv?.hostMemory.queueWindow).toEqual({ requests: 4 })
    expect(kv?.model.bytesPerToken).toBe(131_072)
    expect(kv?.conversations).toBe(4)
    expect(r.stdout).toContain('closed-loop order of 2 client(s), 4 open conversation(s)')
  })

  it('refuses a bad size list or byte count with a clear error', async () => {
    const parse = (flags: string[]) =>
      createAnalyzeCommand()
        .exitOverride()
        .configureOutput({ writeErr: () => {} })
        .parseAsync([fixture('conversation.txt'), ...flags], { from: 'user' })
    await expect(parse(['--host-memory-gb', '50,x'])).rejects.toThrow(
      /--host-memory-gb must be a comma-separated list of numbers > 0/,
    )
    await expect(parse(['--kv-bytes-per-token', '0'])).rejects.toThrow(/--kv-bytes-per-token must be a number > 0/)
    await expect(parse(['--kv-model', 'gpt-5'])).rejects.toThrow(/Allowed choices are opt-13b/)
    await expect(parse(['--queue-window-sec', '-1'])).rejects.toThrow(/--queue-window-sec must be a number ≥ 0/)
  })
})
