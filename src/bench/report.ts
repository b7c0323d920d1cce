import type { SetupResult } from './compare.js'
import { textTable, USER_TABLE_HEADER, userTableRows } from './format.js'
import { naturalCompare, SERVICE_WEIGHT_INPUT, SERVICE_WEIGHT_OUTPUT } from './results.js'
import type { Series } from './svg-chart.js'
import { barChart, colourFor, escapeXml, lineChart, PALETTE } from './svg-chart.js'

/** The comparison table `compare` prints and the report shows: one row per setup. */
export function comparisonRows(results: readonly SetupResult[]): { header: string[]; rows: string[][] } {
  const f = (v: number, digits = 1) => (Number.isFinite(v) ? v.toFixed(digits) : '-')
  const withOracle = results.some((r) => r.goodputVsOracle !== undefined)
  const header = [
    'setup',
    'requests',
    'completed',
    '429_rate',
    'failed',
    'ttft_p50_ms',
    'ttft_p99_ms',
    'goodput_rps',
    'goodput_ratio',
    'goodput_vs_direct',
    ...(withOracle ? ['goodput_vs_oracle'] : []),
    'jain_index',
    'preemptions',
    'max_kv_usage',
    'coverage',
    'prefix_cache_hit_rate',
    'kv_balance',
  ]
  const rows = results.map((r) => {
    const ttft = r.summary.table.ttft_ms
    return [
      r.name,
      String(r.summary.requests),
      String(r.summary.completed),
      `${f(r.summary.rate_429 * 100, 1)}%`,
      String(r.summary.failed),
      f(ttft['50%'] ?? Number.NaN),
      // With fewer than 100 admitted requests describe() has no 99% column; the quantile is still defined.
      f(p99(r)),
      f(r.summary.goodput_rps, 2),
      `${f(r.summary.goodput_ratio * 100, 1)}%`,
      // Below 1: kvgate lost goodput against sending straight to the backend (the floor it must keep).
      r.goodputVsDirect === undefined ? '-' : `${f(r.goodputVsDirect, 2)}${r.goodputVsDirect < 1 ? ' below' : ''}`,
      ...(withOracle ? [r.goodputVsOracle === undefined ? '-' : f(r.goodputVsOracle, 2)] : []),
      f(r.summary.jain_index, 3),
      String(r.preemptions),
      `${f(r.maxKvUsage * 100, 0)}%`,
      // The predictor's coverage at the end (the oracle's too: its predictor ran beside the hints).
      r.predictorCoverage === undefined ? '-' : f(r.predictorCoverage, 2),
      r.prefixCacheHitRate === undefined ? '-' : `${f(r.prefixCacheHitRate * 100, 1)}%`,
      // Points of KV usage between the busiest and the idlest backend, on average over the run.
      r.backends > 1 ? `${f(r.kvBalance * 100, 1)} pp` : '-',
    ]
  })
  return { header, rows }
}

/** The fleet figures a setup's JSON summary carries beside vLLM's (rates 0–1, TTFT in ms). */
export function fleetSummary(r: SetupResult): Record<string, number | null> {
  return {
    ttft_p50_ms: r.summary.table.ttft_ms['50%'] ?? null,
    ttft_p99_ms: Number.isFinite(p99(r)) ? p99(r) : null,
    prefix_cache_hit_rate: r.prefixCacheHitRate ?? null,
    kv_balance: r.kvBalance,
    backends: r.backends,
  }
}

function p99(result: SetupResult): number {
  const ttfts = result.run.records
    .filter((r) => r.outcome === 'completed')
    .map((r) => r.ttftMs as number)
    .sort((a, b) => a - b)
  if (ttfts.length === 0) return Number.NaN
  const position = (ttfts.length - 1) * 0.99
  const lo = Math.floor(position)
  const a = ttfts[lo] as number
  const b = ttfts[Math.ceil(position)] as number
  return a + (b - a) * (position - lo)
}

export function formatComparison(results: readonly SetupResult[]): string {
  const { header, rows } = comparisonRows(results)
  return textTable(header, rows)
}

/** Empirical CDF as step points. */
function cdf(values: readonly number[]): [number, number][] {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.map((v, i) => [v, (i + 1) / sorted.length])
}

/** Cumulative service per user over time (by completion), in VTC's units. */
function serviceOverTime(result: SetupResult, userColours: ReadonlyMap<string, string>): Series[] {
  const byUser = new Map<string, [number, number][]>()
  const done = result.run.records.filter((r) => r.outcome === 'completed').sort((a, b) => a.endMs - b.endMs)
  for (const r of done) {
    const points = byUser.get(r.user) ?? [[0, 0]]
    const last = (points[points.length - 1] as [number, number])[1]
    points.push([
      r.endMs / 1000,
      last + r.inputNumTokens * SERVICE_WEIGHT_INPUT + (r.outputNumTokens ?? 0) * SERVICE_WEIGHT_OUTPUT,
    ])
    byUser.set(r.user, points)
  }
  return [...byUser.entries()]
    .sort((a, b) => naturalCompare(a[0], b[0]))
    .map(([name, points]) => ({ name, points, step: true, colour: userColours.get(name) as string }))
}

/** A user keeps one colour across the per-setup charts: its place among every user of the report. */
function userColourMap(results: readonly SetupResult[]): Map<string, string> {
  const users = new Set(results.flatMap((r) => r.run.records.map((x) => x.user)))
  return new Map([...users].sort(naturalCompare).map((u, i) => [u, PALETTE[i % PALETTE.length] as string] as const))
}

/** 429 answers per second in 1-second buckets (emulated time). */
function rejectionsOverTime(result: SetupResult, endSec: number): [number, number][] {
  const buckets = new Array<number>(Math.max(1, Math.ceil(endSec) + 1)).fill(0)
  for (const r of result.run.records) {
    for (const t of r.rejectionsMs) {
      const b = Math.floor(t / 1000)
      buckets[b] = (buckets[b] ?? 0) + 1
    }
  }
  return buckets.map((n, i) => [i + 0.5, n])
}

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; } h3 { font-size: 14px; margin: 14px 0 4px; }
table { border-collapse: collapse; margin: 8px 0; } td, th { padding: 3px 10px; border-bottom: 1px solid #ddd; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
svg.chart { background: #fff; border: 1px solid #eee; }
svg .title { font-weight: 600; font-size: 13px; } svg .tick, svg .legend { font-size: 11px; fill: #444; }
svg .label { font-size: 12px; fill: #333; } svg .grid { stroke: #eee; } svg .frame { fill: none; stroke: #bbb; }
`

/**
 * After layout, measure every line series and bar: a chart that failed to render has no length or width.
 * The counts go onto a hidden element, which the Chromium tests read from the dumped DOM; users never see
 * it (a broken chart shows itself).
 */
const RENDER_CHECK = `
window.addEventListener('load', function () {
  var marks = document.querySelectorAll('svg.chart path.series, svg.chart rect.bar');
  var drawn = 0;
  marks.forEach(function (m) {
    var box = m.getBBox();
    if (m.tagName === 'path' ? m.getTotalLength() > 0 && box.width > 0 : box.width > 0) drawn++;
  });
  var el = document.getElementById('render-check');
  el.setAttribute('data-series', String(marks.length));
  el.setAttribute('data-drawn', String(drawn));
});
`

/** A self-contained page: the style, the body, the hidden render check and its script. */
export function renderPage(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeXml(title)}</title><style>${STYLE}</style></head>
<body>
<h1>${escapeXml(title)}</h1>
${body}
<div id="render-check" hidden></div>
<script>${RENDER_CHECK}</script>
</body></html>
`
}

/** An HTML table from a header and rows of cells (escaped here). */
export function htmlTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  return `<table><thead><tr>${header.map((h) => `<th>${escapeXml(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${escapeXml(c)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`
}

export interface ReportContext {
  title: string
  workload: string
  notes: readonly string[]
}

/** A self-contained HTML report: the comparison table and inline-SVG charts, no external resources. */
export function renderReport(results: readonly SetupResult[], context: ReportContext): string {
  const { header, rows } = comparisonRows(results)
  const table = htmlTable(header, rows)
  const endSec = Math.max(1, ...results.map((r) => r.run.runtimeMs / 1000))

  const ttftCdf = lineChart({
    title: 'TTFT of admitted requests (CDF)',
    xLabel: 'TTFT (ms)',
    yLabel: 'fraction of requests',
    yMax: 1,
    yFormat: (v) => v.toFixed(1),
    series: results.map((r) => ({
      name: r.name,
      colour: colourFor(r.name),
      step: true,
      points: cdf(r.run.records.filter((x) => x.outcome === 'completed').map((x) => x.ttftMs as number)),
    })),
  })
  const kv = lineChart({
    title: 'Backend KV-cache usage',
    xLabel: 'time (s)',
    yLabel: 'kv_cache_usage_perc',
    yMax: 1,
    xMax: endSec,
    yFormat: (v) => v.toFixed(1),
    series: results.map((r) => ({
      name: r.name,
      colour: colourFor(r.name),
      points: r.samples.filter((s) => s.kvUsage !== undefined).map((s) => [s.tMs / 1000, s.kvUsage as number]),
    })),
  })
  const queue = lineChart({
    title: 'Requests waiting (vLLM queue + kvgate queue)',
    xLabel: 'time (s)',
    yLabel: 'requests',
    xMax: endSec,
    series: results.map((r) => ({
      name: r.name,
      colour: colourFor(r.name),
      points: r.samples.map((s) => [s.tMs / 1000, (s.backendWaiting ?? 0) + (s.kvgateQueueDepth ?? 0)]),
    })),
  })
  const rejections = lineChart({
    title: '429s over time',
    xLabel: 'time (s)',
    yLabel: '429s per second',
    xMax: endSec,
    series: results.map((r) => ({ name: r.name, colour: colourFor(r.name), points: rejectionsOverTime(r, endSec) })),
  })
  // The fleet's two figures side by side: how much of the prompts the caches served, and how evenly KV was used.
  // (For a fleet: with one emulator per setup the hit rate is in the table and there is no balance to draw.)
  const fleet = results.some((r) => r.backends > 1)
    ? barChart({
        title: 'Prefix-cache hit rate and KV balance',
        xLabel: 'setup',
        yLabel: 'percent',
        categories: results.map((r) => r.name),
        yFormat: (v) => `${v.toFixed(1)}%`,
        series: [
          {
            name: 'prefix-cache hit rate',
            values: results.map((r) => (r.prefixCacheHitRate === undefined ? null : r.prefixCacheHitRate * 100)),
          },
          {
            name: 'KV balance (max − min mean usage, pp)',
            values: results.map((r) => (r.backends > 1 ? r.kvBalance * 100 : null)),
          },
        ],
        width: Math.max(560, 90 * results.length),
      })
    : ''
  // One scale for every setup's chart, so setups compare at a glance.
  const userColours = userColourMap(results)
  const services = results.map((r) => serviceOverTime(r, userColours))
  const serviceMax = Math.max(1, ...services.flatMap((series) => series.flatMap((s) => s.points.map(([, y]) => y))))
  const service = results
    .map((r, i) =>
      lineChart({
        title: `Service per user over time: ${r.name}`,
        xLabel: 'time (s)',
        yLabel: `tokens (prompt×${SERVICE_WEIGHT_INPUT} + output×${SERVICE_WEIGHT_OUTPUT})`,
        xMax: endSec,
        yMax: serviceMax,
        width: 460,
        series: services[i] as Series[],
      }),
    )
    .join('')

  const userTables = results
    .map((r) => {
      const f = (v: number, digits = 1) => (Number.isFinite(v) ? v.toFixed(digits) : '-')
      const body = userTableRows(r.summary.users, f)
      return `<h3>${escapeXml(r.name)}</h3>${htmlTable(USER_TABLE_HEADER, body)}`
    })
    .join('\n')

  return renderPage(
    context.title,
    `<p>Workload: ${escapeXml(context.workload)}</p>
${context.notes.map((n) => `<p>${escapeXml(n)}</p>`).join('\n')}
<h2>Comparison</h2>
${table}
<h2>Latency</h2><div class="charts">${ttftCdf}${rejections}</div>
<h2>Backend state</h2><div class="charts">${kv}${queue}${fleet}</div>
<h2>Per-user service</h2><div class="charts">${service}</div>
<h2>Per user</h2>
${userTables}`,
  )
}
