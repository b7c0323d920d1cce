import type { RequestRecord } from './runner.js'
import type { BenchSummary, UserFigures } from './results.js'
import { SUMMARY_METRICS } from './results.js'

/** vLLM's separator line: 100 dashes. */
export const SEPARATOR = '-'.repeat(100)

const fixed = (value: number, digits = 2): string => (Number.isFinite(value) ? value.toFixed(digits) : 'NaN')

/** A right-aligned text table, first column left-aligned, as pandas prints a frame. */
export function textTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ')
  return [line(header), ...rows.map(line)].join('\n')
}

/** The per-user table's columns, in the text summary and the HTML report alike. */
export const USER_TABLE_HEADER = [
  'user',
  'requests',
  'completed',
  '429s',
  'failed',
  'prompt_tok',
  'output_tok',
  'ttft_p50_ms',
  'ttft_p99_ms',
  'service/fair',
] as const

/**
 * One row of cells per user, under `USER_TABLE_HEADER`. `number` renders the non-count figures: the TTFTs with
 * its default digits, service/fair with 3 (the text and HTML tables differ in digits and in how NaN reads).
 */
export function userTableRows(
  users: readonly UserFigures[],
  number: (value: number, digits?: number) => string,
): string[][] {
  return users.map((u) => [
    u.user,
    String(u.requests),
    String(u.completed),
    String(u.responses429),
    String(u.failed),
    String(u.promptTokensServed),
    String(u.completionTokensServed),
    number(u.ttftP50Ms),
    number(u.ttftP99Ms),
    number(u.fairShare > 0 ? u.service / u.fairShare : Number.NaN, 3),
  ])
}

/** The summary block of vLLM's multi-turn bench, then kvgate's admission and fairness figures. */
export function formatSummary(summary: BenchSummary): string {
  const first = summary.table.ttft_ms
  const columns = Object.keys(first)
  const rows = SUMMARY_METRICS.map((name) => {
    const d = summary.table[name]
    return [name, ...columns.map((c) => fixed(d[c] ?? Number.NaN, c === 'count' ? 1 : 2))]
  })
  const slo = Object.entries(summary.slo)
    .map(([k, v]) => `${k.replace(/Ms$/, '')}:${v}`)
    .join(',')
  const reasons = Object.entries(summary.rejections_by_reason)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')
  const failures = Object.entries(summary.failures_by_status)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')
  const users = textTable(USER_TABLE_HEADER, userTableRows(summary.users, fixed))
  return [
    SEPARATOR,
    'Statistics summary:',
    `runtime_sec = ${fixed(summary.runtime_sec, 3)}`,
    `requests_per_sec = ${fixed(summary.requests_per_sec, 3)}`,
    ...(summary.warmup_runtime_sec !== undefined
      ? [
          `warmup_runtime_sec = ${fixed(summary.warmup_runtime_sec, 3)}`,
          `total_runtime_incl_warmup_sec = ${fixed(summary.total_runtime_incl_warmup_sec ?? Number.NaN, 3)}`,
        ]
      : []),
    SEPARATOR,
    textTable(['', ...columns], rows),
    SEPARATOR,
    tokenSourcesLine(summary),
    `requests = ${summary.requests}  completed = ${summary.completed}  rejected_429 = ${summary.rejected_429}` +
      `  failed = ${summary.failed}  responses_429 = ${summary.responses_429}`,
    `rate_429 = ${fixed(summary.rate_429, 4)}${reasons ? `  (${reasons})` : ''}${failures ? `  failures: ${failures}` : ''}`,
    `goodput_rps = ${fixed(summary.goodput_rps, 3)}  goodput_ratio = ${fixed(summary.goodput_ratio, 4)}` +
      `  slo = ${slo || '(none: every completed request counts)'}`,
    `output_tokens_per_sec = ${fixed(summary.output_tokens_per_sec, 1)}`,
    `jain_index = ${fixed(summary.jain_index, 4)}  jain_index_raw = ${fixed(summary.jain_index_raw, 4)}` +
      `  max_service_difference = ${fixed(summary.max_service_difference, 0)}`,
    SEPARATOR,
    users,
    SEPARATOR,
  ].join('\n')
}

/** Where the two prompt-size rows come from, so that neither is mistaken for the other. */
export function tokenSourcesLine(summary: BenchSummary): string {
  const { server, estimate } = summary.input_num_tokens_source
  const source =
    estimate === 0
      ? "the server's usage.prompt_tokens"
      : server === 0
        ? "kvgate's estimate (chat template through its word-piece counter; the server reported no usage)"
        : `the server's usage.prompt_tokens for ${server} requests, kvgate's estimate for ${estimate}`
  return `input_num_tokens: ${source}; input_content_tokens: message content only, as vLLM's multi-turn client counts input_num_tokens`
}

/** Per-request CSV columns, in order. */
export const CSV_COLUMNS = [
  'index',
  'user',
  'conversation_id',
  'round',
  'scheduled_ms',
  'start_ms',
  'end_ms',
  'outcome',
  'status',
  'reject_reason',
  'attempts',
  'responses_429',
  'ttft_ms',
  'tpot_ms',
  'latency_ms',
  'input_num_turns',
  'input_num_tokens',
  'input_num_tokens_source',
  'input_content_tokens',
  'requested_output_tokens',
  'output_num_tokens',
  'output_num_chunks',
  'error',
] as const

function csvCell(value: unknown): string {
  if (value === undefined || value === null) return ''
  const text = typeof value === 'number' ? (Number.isInteger(value) ? String(value) : value.toFixed(3)) : String(value)
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

export function recordsToCsv(records: readonly RequestRecord[]): string {
  const rows = records.map((r) =>
    [
      r.index,
      r.user,
      r.conversationId,
      r.round,
      r.scheduledMs,
      r.startMs,
      r.endMs,
      r.outcome,
      r.status,
      r.rejectReason,
      r.attempts,
      r.rejectionsMs.length,
      r.ttftMs,
      r.tpotMs,
      r.latencyMs,
      r.inputNumTurns,
      r.inputNumTokens,
      r.inputNumTokensSource,
      r.inputContentTokens,
      r.requestedOutputTokens,
      r.outputNumTokens,
      r.outputNumChunks,
      r.error,
    ]
      .map(csvCell)
      .join(','),
  )
  return `${[CSV_COLUMNS.join(','), ...rows].join('\n')}\n`
}
