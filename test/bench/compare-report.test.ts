import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createSeededRandom } from '../../src/core/index.js'
import { createWordPieceTokenCounter } from '../../src/tokens/index.js'
import { generateMultiUserTrace } from '../../src/bench/index.js'
import { runCompare } from '../../src/bench/compare.js'
import { formatComparison, renderReport } from '../../src/bench/report.js'
import { colourFor } from '../../src/bench/svg-chart.js'
import { CHROMIUM, dumpDom, renderCheck } from './support/chromium.js'
import type { Workload } from '../../src/bench/index.js'

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

    // The render check is for the tests, not the reader: a hidden element with no text.
    expect(html).toMatch(/<div id="render-check" hidden><\/div>/)
    expect(visibleText(html)).not.toMatch(/drawn|render|check/i)

    // The per-setup service charts share one y-scale.
    const serviceScales = [
      ...html.matchAll(/aria-label="Service per user over time: [^"]+" data-y-max="([\d.e+]+)"/g),
    ].map((m) => m[1])
    expect(serviceScales).toHaveLength(3)
    expect(new Set(serviceScales).size).toBe(1)
    expect(Number(serviceScales[0])).toBeGreaterThan(0)

    // Each setup's colour is fixed by its name (direct black), in every chart and in a report of other setups.
    const colours = setupColours(html, ['direct', 'fifo', 'vtc'])
    expect(colours.get('direct')).toEqual(new Set(['#000000']))
    for (const name of ['direct', 'fifo', 'vtc']) expect(colours.get(name)).toEqual(new Set([colourFor(name)]))
    expect(new Set(['direct', 'fifo', 'vtc'].map(colourFor)).size).toBe(3)
    const other = renderReport(
      [results[2], results[0]].filter((r) => r !== undefined),
      {
        title: 'other',
        workload: 'generated',
        notes: [],
      },
    )
    const otherColours = setupColours(other, ['vtc', 'direct'])
    expect(otherColours.get('vtc')).toEqual(colours.get('vtc'))
    expect(otherColours.get('direct')).toEqual(colours.get('direct'))
    const file = join(dir, 'report.html')
    writeFileSync(file, html)

    if (CHROMIUM === undefined) {
      // CI installs Debian's chromium (.ci/run); a developer machine without it still checks the SVG.
      expect(process.env['CI'], 'chromium must be installed in CI').toBeUndefined()
      expect((html.match(/<path class="series"/g) ?? []).length).toBeGreaterThan(10)
      return
    }
    const dom = dumpDom(file, dir)
    const check = renderCheck(dom)
    expect(check, 'the report script ran and measured the charts').toBeDefined()
    const { series, drawn } = check as { series: number; drawn: number }
    expect(dom, 'still hidden and empty after the script ran').toMatch(/<div id="render-check" hidden=""[^>]*><\/div>/)
    // TTFT CDF, 429s, KV usage and queue depth: one series per setup each; plus per-user service lines.
    expect(series).toBeGreaterThanOrEqual(4 * 3 + 3)
    expect(drawn).toBe(series)
    expect((dom.match(/<svg[^>]+class="chart"/g) ?? []).length).toBe(4 + 3)
  })
})

/** The text a reader sees: tags, scripts, styles and hidden elements removed. */
function visibleText(html: string): string {
  return html
    .replace(/<(script|style)[^>]*>[\s\S]*?<\/\1>/g, '')
    .replace(/<[^>]+\bhidden\b[^>]*>[\s\S]*?<\/[a-z]+>/g, '')
    .replace(/<[^>]+>/g, ' ')
}

/** The stroke colours each of these setups' series are drawn in, over every chart of the report. */
function setupColours(html: string, names: readonly string[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>()
  for (const m of html.matchAll(/<path class="series" data-series="([^"]+)" d="[^"]*" stroke="([^"]+)"/g)) {
    const [, name, colour] = m as unknown as [string, string, string]
    if (!names.includes(name)) continue
    out.set(name, (out.get(name) ?? new Set()).add(colour))
  }
  return out
}
