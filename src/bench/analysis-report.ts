import type { WorkloadAnalysis } from './analysis.js'
import type { Cdf, ConversationKvAnalysis } from './conversation-kv.js'
import { conversationKvHeadline, conversationKvTables, formatBytes } from './conversation-kv-format.js'
import { htmlTable, renderPage } from './report.js'
import type { Description } from './statistics.js'
import { barChart, colourFor, escapeXml, lineChart, rampColour } from './svg-chart.js'

/**
 * `bench analyze --report`: the analysis as a self-contained page, drawn with compare's renderer
 * (report.ts's page and render check, svg-chart.ts's charts). The tables are the ones the terminal shows.
 */
export interface AnalysisReportContext {
  title: string
  workload: string
}

const UNITS: [number, string][] = [
  [2 ** 40, 'TiB'],
  [2 ** 30, 'GiB'],
  [2 ** 20, 'MiB'],
  [2 ** 10, 'KiB'],
  [1, 'B'],
]

/** The binary unit that makes `maxBytes` read as a number ≥ 1, for a chart's axis. */
function byteUnit(maxBytes: number): { div: number; name: string } {
  const [div, name] = UNITS.find(([d]) => maxBytes >= d) ?? [1, 'B']
  return { div, name }
}

const fraction = (v: number) => v.toFixed(1)
const percentTick = (v: number) => `${Math.round(v * 100)}%`

function cdfChart(title: string, xLabel: string, cdf: Cdf, scale = 1): string {
  return lineChart({
    title,
    xLabel,
    yLabel: 'fraction',
    yMax: 1,
    yFormat: fraction,
    series: [{ name: 'all', step: true, colour: '#0072B2', points: cdf.map(([v, f]) => [v / scale, f]) }],
  })
}

function describeHtml(rows: [string, Description][]): string {
  const columns = Object.keys(rows[0]?.[1] ?? {})
  const cell = (v: number | undefined, c: string) =>
    v === undefined || !Number.isFinite(v) ? '-' : c === 'count' ? String(v) : v.toFixed(1)
  return htmlTable(
    ['', ...columns],
    rows.map(([name, d]) => [name, ...columns.map((c) => cell(d[c], c))]),
  )
}

function workloadSection(a: WorkloadAnalysis): string {
  const parts = [
    `<p>${escapeXml(`format ${a.format}, ${a.requests} requests, ${a.users.count} users${a.durationSec !== undefined ? `, ${a.durationSec.toFixed(1)} s` : ''}${a.skippedRows ? `, ${a.skippedRows} malformed rows skipped` : ''}`)}</p>`,
  ]
  const rows: [string, Description][] = [
    ['input_tokens', a.inputTokens],
    ['prompt_tokens', a.promptTokens],
    ['output_tokens', a.outputTokens],
  ]
  if (a.conversations) {
    rows.push(['conversation_rounds', a.conversations.rounds])
    if (a.conversations.durationSec) rows.push(['conversation_sec', a.conversations.durationSec])
  }
  parts.push(describeHtml(rows))
  if (a.rate) {
    const bucket = a.rate.bucketSec
    parts.push(
      `<div class="charts">${lineChart({
        title: `Requests per second (${bucket} s buckets)`,
        xLabel: 'time (s)',
        yLabel: 'requests per second',
        series: [
          { name: 'rate', colour: '#0072B2', points: a.rate.requestsPerSec.map((r, i) => [(i + 0.5) * bucket, r]) },
        ],
      })}</div>`,
    )
  }
  return parts.join('\n')
}

function conversationKvSection(a: ConversationKvAnalysis): string {
  const policies = a.hostMemory.sizes[0]?.policies.map((p) => p.policy) ?? []
  const charts: string[] = []
  const maxRounds = 30
  const histogram = new Map<number, number>()
  for (const h of a.users.roundsHistogram) {
    const k = Math.min(h.rounds, maxRounds)
    histogram.set(k, (histogram.get(k) ?? 0) + h.users)
  }
  const top = Math.max(1, ...histogram.keys())
  charts.push(
    barChart({
      title: 'Rounds per user',
      xLabel: 'rounds',
      yLabel: 'users',
      categories: Array.from({ length: top }, (_, i) => (i + 1 === maxRounds ? `${maxRounds}+` : String(i + 1))),
      series: [
        { name: 'users', colour: '#0072B2', values: Array.from({ length: top }, (_, i) => histogram.get(i + 1) ?? 0) },
      ],
    }),
  )
  if (a.users.durationCdfSec) {
    charts.push(
      cdfChart('Conversation duration per user (CDF)', 'seconds, first to last request', a.users.durationCdfSec),
    )
  }
  const historyUnit = byteUnit(a.history.bytes['max'] ?? 0)
  charts.push(
    cdfChart(
      'History KV per request (CDF)',
      `KV to load or recompute (${historyUnit.name})`,
      a.history.cdfBytes,
      historyUnit.div,
    ),
  )
  charts.push(
    barChart({
      title: 'Mean history KV by round',
      xLabel: 'round',
      yLabel: historyUnit.name,
      categories: a.history.byRound.map((r) => `${r.round}${r.orMore ? '+' : ''}`),
      series: [
        { name: 'mean', colour: '#0072B2', values: a.history.byRound.map((r) => r.meanBytes / historyUnit.div) },
      ],
    }),
  )
  const distanceUnit = byteUnit(a.reuseDistance.bytes['max'] ?? 0)
  charts.push(
    cdfChart(
      'Weighted reuse distance (CDF)',
      `other conversations' KV touched (${distanceUnit.name})`,
      a.reuseDistance.cdfBytes,
      distanceUnit.div,
    ),
  )
  if (a.history.loadOverTime) {
    const load = a.history.loadOverTime
    const loadUnit = byteUnit(load.describe['max'] ?? 0)
    charts.push(
      lineChart({
        title: `KV to load per second (${load.bucketSec} s buckets)`,
        xLabel: 'time (s)',
        yLabel: `${loadUnit.name}/s`,
        series: [
          {
            name: 'history',
            colour: '#0072B2',
            points: load.bytesPerSec.map((v, i) => [(i + 0.5) * load.bucketSec, v / loadUnit.div]),
          },
        ],
      }),
    )
  }

  const tier: string[] = [
    barChart({
      title: 'Host-memory tier hit rate (history bytes)',
      xLabel: 'host memory',
      yLabel: 'hit rate',
      yMax: 1,
      yFormat: percentTick,
      categories: a.hostMemory.sizes.map((s) => `${s.sizeGiB} GiB`),
      series: policies.map((p) => ({
        name: p,
        colour: colourFor(p),
        values: a.hostMemory.sizes.map((s) => s.policies.find((x) => x.policy === p)?.hitRate ?? null),
      })),
    }),
  ]
  const buckets = a.hitRateByReuseDistance.buckets
  for (const size of a.hitRateByReuseDistance.sizes) {
    tier.push(
      lineChart({
        title: `Hit rate by weighted reuse distance, ${size.sizeGiB} GiB`,
        xLabel: `mean reuse distance of the bucket (${distanceUnit.name})`,
        yLabel: 'hit rate',
        yMax: 1,
        yFormat: percentTick,
        series: policies.map((p) => ({
          name: p,
          colour: colourFor(p),
          points: buckets.flatMap((b, i) => {
            const v = size.policies[p]?.[i]
            return v === null || v === undefined ? [] : [[b.meanBytes / distanceUnit.div, v] as const]
          }),
        })),
      }),
    )
  }
  const overTime = a.hitRateOverTime
  if (overTime) {
    for (const size of overTime.sizes) {
      tier.push(
        lineChart({
          title: `Hit rate over time (${overTime.bucketSec} s windows), ${size.sizeGiB} GiB`,
          xLabel: 'time (s)',
          yLabel: 'hit rate',
          yMax: 1,
          yFormat: percentTick,
          series: policies.map((p) => ({
            name: p,
            colour: colourFor(p),
            points: overTime.startsSec.flatMap((t, i) => {
              const v = size.policies[p]?.[i]
              return v === null || v === undefined ? [] : [[t + overTime.bucketSec / 2, v] as const]
            }),
          })),
        }),
      )
    }
  }
  const bound = a.reuseDistanceLowerBound
  const boundMax = Math.max(0, ...bound.windows.flatMap((w) => w.buckets.map((b) => b.minBytes ?? 0)))
  const boundUnit = byteUnit(boundMax)
  const edges = bound.answerEdgesTokens
  tier.push(
    barChart({
      title: 'Reuse distance lower bound by previous answer length',
      xLabel: 'previous answer length (tokens)',
      yLabel: `least reuse distance (${boundUnit.name})`,
      categories: edges.map((e, i) => (i + 1 < edges.length ? `${e}–${edges[i + 1]}` : `${e}+`)),
      series: bound.windows.map((w, i) => ({
        name: w.label,
        colour: rampColour(i, bound.windows.length),
        values: w.buckets.map((b) => (b.minBytes === null ? null : b.minBytes / boundUnit.div)),
      })),
    }),
  )

  const tables = conversationKvTables(a)
    .map((t) => `<h3>${escapeXml(t.title)}</h3>${htmlTable(t.header, t.rows)}`)
    .join('\n')
  return `<p>${escapeXml(conversationKvHeadline(a))}</p>
<p>${escapeXml(`${a.users.count} users, ${a.conversations} conversations, ${a.requests} requests, ${a.returningTurns} returning turns; ${formatBytes(a.history.totalBytes)} of history KV in all`)}</p>
<h3>Users and history</h3><div class="charts">${charts.join('')}</div>
<h3>Host-memory tier</h3><div class="charts">${tier.join('')}</div>
${tables}`
}

export function renderAnalysisReport(a: WorkloadAnalysis, context: AnalysisReportContext): string {
  const body = [`<p>Workload: ${escapeXml(context.workload)}</p>`, '<h2>Workload</h2>', workloadSection(a)]
  if (a.conversationKv) body.push('<h2>Conversation KV</h2>', conversationKvSection(a.conversationKv))
  return renderPage(context.title, body.join('\n'))
}
