import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createSeededRandom } from '../../src/core/index.js'
import { createWordPieceTokenCounter } from '../../src/tokens/index.js'
import { generateMultiUserTrace } from '../../src/bench/index.js'
import { runCompare } from '../../src/bench/compare.js'
import { formatComparison, renderReport } from '../../src/bench/report.js'
import type { Workload } from '../../src/bench/index.js'

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p))
const dir = mkdtempSync(join(tmpdir(), 'kvgate-compare-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

// A short bursty multi-user workload against a small emulator: enough to queue and reject, a few seconds.
const requests = generateMultiUserTrace(
  {
    duration_sec: 4,
    num_users: 4,
    conversation_rate: 8,
    burstiness: 0.5,
    num_rounds: { distribution: 'uniform', min: 1, max: 2 },
    think_time_sec: { distribution: 'uniform', min: 0.2, max: 0.6 },
    input_num_tokens: { distribution: 'lognormal', average: 200, max: 600 },
    output_num_tokens: { distribution: 'lognormal', average: 60, max: 200 },
  },
  createSeededRandom(5),
  'test',
)
const workload: Workload = { kind: 'trace', format: 'multi-user', requests, skipped: [] }

describe('bench compare', () => {
  it('runs direct and each policy, accounts for every request, and writes a report Chromium draws', async () => {
    const results = await runCompare({
      workload,
      counter: createWordPieceTokenCounter(),
      seed: 5,
      policies: ['fifo', 'vtc'],
      sim: { numGpuBlocks: 120 },
      speed: 10,
      deadlineMs: 1500,
      slo: { ttftMs: 1000 },
      run: {},
      sampleIntervalMs: 200,
    })
    expect(results.map((r) => r.name)).toEqual(['direct', 'fifo', 'vtc'])
    for (const r of results) {
      // Every request sent ends in exactly one outcome.
      expect(r.summary.requests).toBe(requests.length)
      expect(r.summary.completed + r.summary.rejected_429 + r.summary.failed).toBe(requests.length)
      expect(r.samples.length).toBeGreaterThan(2)
      expect(r.samples.some((s) => (s.kvUsage ?? 0) > 0)).toBe(true)
    }
    const direct = results[0]
    expect(direct?.summary.rejected_429).toBe(0) // the emulator never answers 429
    expect(results.slice(1).every((r) => r.samples.some((s) => s.kvgateQueueDepth !== undefined))).toBe(true)
    const table = formatComparison(results)
    expect(table.split('\n')).toHaveLength(4)
    expect(table).toMatch(/^setup\s+requests\s+completed\s+429_rate/)

    const html = renderReport(results, { title: 'test report', workload: 'generated', notes: ['note <escaped>'] })
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=|https?:\/\/(?!www\.w3\.org)/) // self-contained
    expect(html).toContain('note &lt;escaped&gt;')
    const file = join(dir, 'report.html')
    writeFileSync(file, html)

    if (CHROMIUM === undefined) {
      // CI installs Debian's chromium (.ci/run); a developer machine without it still checks the SVG.
      expect(process.env['CI'], 'chromium must be installed in CI').toBeUndefined()
      expect((html.match(/<path class="series"/g) ?? []).length).toBeGreaterThan(10)
      return
    }
    const dom = execFileSync(
      CHROMIUM,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--no-first-run',
        `--user-data-dir=${join(dir, 'profile')}`,
        '--virtual-time-budget=5000',
        '--dump-dom',
        `file://${file}`,
      ],
      { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'ignore'] },
    )
    const check = /<p id="render-check" data-series="(\d+)" data-drawn="(\d+)"/.exec(dom)
    expect(check, 'the report script ran and measured the charts').not.toBeNull()
    const [series, drawn] = [Number(check?.[1]), Number(check?.[2])]
    // TTFT CDF, 429s, KV usage and queue depth: one series per setup each; plus per-user service lines.
    expect(series).toBeGreaterThanOrEqual(4 * 3 + 3)
    expect(drawn).toBe(series)
    expect((dom.match(/<svg[^>]+class="chart"/g) ?? []).length).toBe(4 + 3)
  })
})
