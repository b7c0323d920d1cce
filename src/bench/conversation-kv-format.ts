import type { ConversationKvAnalysis } from './conversation-kv.js'
import { textTable } from './format.js'
import type { Description } from './statistics.js'

/**
 * The conversation-KV section as tables: the same header and rows go to the terminal and to the HTML
 * report, so the two never disagree.
 */
export interface Table {
  title: string
  header: string[]
  rows: string[][]
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const

/** Bytes in binary units, 3 significant digits: `800 KiB`, `1.37 GiB`. */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '-'
  let value = bytes
  let unit = 0
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024
    unit++
  }
  return `${unit === 0 ? String(value) : Number(value.toPrecision(3))} ${UNITS[unit]}`
}

const percent = (v: number | null | undefined): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '-' : `${(v * 100).toFixed(1)}%`
const num = (v: number | undefined, digits = 1): string =>
  v === undefined || !Number.isFinite(v) ? '-' : Number.isInteger(v) ? String(v) : v.toFixed(digits)

function describeTable(title: string, rows: [string, Description, (v: number) => string][]): Table {
  const columns = Object.keys(rows[0]?.[1] ?? {})
  return {
    title,
    header: ['', ...columns],
    rows: rows.map(([name, d, cell]) => [name, ...columns.map((c) => (c === 'count' ? num(d[c]) : cell(d[c] ?? NaN)))]),
  }
}

export function conversationKvTables(a: ConversationKvAnalysis): Table[] {
  const tables: Table[] = []
  const dist: [string, Description, (v: number) => string][] = [
    ['user_rounds', a.users.rounds, (v) => num(v)],
    ['user_conversations', a.users.conversations, (v) => num(v)],
  ]
  if (a.users.durationSec) dist.push(['user_duration_sec', a.users.durationSec, (v) => num(v)])
  dist.push(
    ['history_tokens', a.history.tokens, (v) => num(v)],
    ['history_kv', a.history.bytes, formatBytes],
    ['reuse_distance', a.reuseDistance.bytes, formatBytes],
  )
  tables.push(describeTable('Distributions (per user, per request, per returning turn)', dist))

  const policies = a.hostMemory.sizes[0]?.policies.map((p) => p.policy) ?? []
  const window =
    'seconds' in a.hostMemory.queueWindow
      ? `queue-aware sees the requests of the next ${a.hostMemory.queueWindow.seconds} s`
      : `queue-aware sees the next turns of the ${a.hostMemory.queueWindow.requests} open conversations`
  tables.push({
    title: `Host-memory tier hit rate: history bytes found (returning turns found whole); ${window}`,
    header: ['host_memory', ...policies],
    rows: a.hostMemory.sizes.map((s) => [
      `${s.sizeGiB} GiB`,
      ...s.policies.map((p) => `${percent(p.hitRate)} (${percent(p.requestHitRate)})`),
    ]),
  })

  for (const size of a.hitRateByReuseDistance.sizes) {
    tables.push({
      title: `Hit rate by weighted reuse distance, host memory ${size.sizeGiB} GiB`,
      header: ['reuse_distance', 'turns', ...policies],
      rows: a.hitRateByReuseDistance.buckets.map((b, i) => [
        `${formatBytes(b.fromBytes)} – ${formatBytes(b.toBytes)}`,
        String(b.turns),
        ...policies.map((p) => percent(size.policies[p]?.[i])),
      ]),
    })
  }

  const edges = a.reuseDistanceLowerBound.answerEdgesTokens
  tables.push({
    title: 'Reuse distance lower bound (least distance seen) by the previous answer length in tokens',
    header: [
      'window',
      ...edges.map((e, i) => (i + 1 < edges.length ? `${e}-${(edges[i + 1] as number) - 1}` : `${e}+`)),
    ],
    rows: a.reuseDistanceLowerBound.windows.map((w) => [w.label, ...w.buckets.map((b) => formatBytes(b.minBytes))]),
  })

  tables.push({
    title: 'History carried by round (mean KV to load or recompute)',
    header: ['round', 'requests', 'mean_tokens', 'mean_kv'],
    rows: a.history.byRound.map((r) => [
      `${r.round}${r.orMore ? '+' : ''}`,
      String(r.requests),
      num(r.meanTokens),
      formatBytes(r.meanBytes),
    ]),
  })
  return tables
}

/** One line naming the cost per token and the order the tier sees. */
export function conversationKvHeadline(a: ConversationKvAnalysis): string {
  const cost = `${a.model.model}: ${formatBytes(a.model.bytesPerToken)} of KV per token${a.model.derivation ? ` (${a.model.derivation})` : ''}`
  const order =
    a.order === 'arrival'
      ? 'the trace order, each request served at its arrival'
      : `the closed-loop order of ${a.closedLoop?.numClients} client(s), ${a.closedLoop?.maxActiveConversations} open conversation(s)`
  return `conversation KV (${cost}); tier sees ${order}`
}

export function formatConversationKv(a: ConversationKvAnalysis): string {
  const lines = [
    conversationKvHeadline(a),
    `users = ${a.users.count}  conversations = ${a.conversations}  requests = ${a.requests}  returning_turns = ${a.returningTurns}  history_total = ${formatBytes(a.history.totalBytes)}  first_turn_share = ${percent(a.history.firstTurnShare)}`,
  ]
  if (a.history.loadOverTime) {
    const d = a.history.loadOverTime.describe
    lines.push(
      `KV to load per second (${a.history.loadOverTime.bucketSec} s buckets): mean ${formatBytes(d['mean'])}/s, p50 ${formatBytes(d['50%'])}/s, max ${formatBytes(d['max'])}/s`,
    )
  }
  for (const t of conversationKvTables(a)) lines.push(`${t.title}:`, textTable(t.header, t.rows))
  return lines.join('\n')
}
