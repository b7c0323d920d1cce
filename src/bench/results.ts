import { errors } from '../errors/index.js'
import type { RequestRecord, RunResult } from './runner.js'
import type { Description } from './statistics.js'
import { describe, describePercentiles, jainIndex, maxMinFairShares, quantile } from './statistics.js'

/**
 * The figures of one run: vLLM's multi-turn summary (runtime, requests/s and the describe() table over
 * completed requests), plus what admission control changes: 429s, goodput under SLOs, per-user service and
 * fairness.
 */
export interface Slo {
  ttftMs?: number
  tpotMs?: number
  e2elMs?: number
}

/** Service units, as VTC prices them: a prompt token 1, a completion token 2 (w_in = 1, w_out = 2). */
export const SERVICE_WEIGHT_INPUT = 1
export const SERVICE_WEIGHT_OUTPUT = 2

/** The columns of vLLM's summary table, in its order. */
export const SUMMARY_METRICS = [
  'ttft_ms',
  'tpot_ms',
  'latency_ms',
  'input_num_turns',
  'input_num_tokens',
  'input_content_tokens',
  'output_num_tokens',
  'output_num_chunks',
] as const

export interface UserFigures {
  user: string
  requests: number
  completed: number
  rejected: number
  failed: number
  /** 429 answers received (a retried request can collect several). */
  responses429: number
  promptTokensServed: number
  completionTokensServed: number
  /** promptTokens·1 + completionTokens·2 over completed requests. */
  service: number
  /** Service asked for: the same weights over every request, served or not. */
  demand: number
  /** Max-min fair share of the total service, given every user's demand. */
  fairShare: number
  ttftP50Ms: number
  ttftP99Ms: number
}

export interface BenchSummary {
  runtime_sec: number
  requests_per_sec: number
  /** With `--warmup-step`, as vLLM prints them: the warm-up's length, and the run's plus the warm-up's. */
  warmup_runtime_sec?: number
  total_runtime_incl_warmup_sec?: number
  requests: number
  completed: number
  /** Requests whose final answer was a 429. */
  rejected_429: number
  /** 429 answers received, counting retried ones. */
  responses_429: number
  rate_429: number
  rejections_by_reason: Record<string, number>
  failed: number
  failures_by_status: Record<string, number>
  output_tokens_per_sec: number
  slo: Slo
  /** Completed requests per second meeting every SLO (vLLM's goodput). */
  goodput_rps: number
  /** Share of all requests that completed within every SLO. */
  goodput_ratio: number
  /** Jain's index of service / max-min fair share per user (1 = max-min fair). */
  jain_index: number
  /** Jain's index of raw service per user (1 = everyone got the same, whatever they asked). */
  jain_index_raw: number
  /** Largest difference in service between two users that were both held below their demand. */
  max_service_difference: number
  table: Record<(typeof SUMMARY_METRICS)[number], Description>
  /**
   * Where the `input_num_tokens` row comes from: completed requests whose server reported `usage.prompt_tokens`,
   * and those counted by kvgate's estimate (the chat template through its word-piece counter).
   */
  input_num_tokens_source: { server: number; estimate: number }
  users: UserFigures[]
}

/** `ttft:500,tpot:50,e2el:3000` (vLLM writes `ttft:500 tpot:50`; both separators work). */
export function parseSlo(text: string | undefined): Slo {
  const slo: Slo = {}
  if (text === undefined || text.trim() === '') return slo
  for (const part of text.split(/[\s,]+/).filter(Boolean)) {
    const [name, value] = part.split(':')
    const ms = Number(value)
    if (!Number.isFinite(ms) || ms <= 0) throw errors.invalidWorkload(['--slo', `bad value in ${JSON.stringify(part)}`])
    if (name === 'ttft') slo.ttftMs = ms
    else if (name === 'tpot') slo.tpotMs = ms
    else if (name === 'e2el') slo.e2elMs = ms
    else throw errors.invalidWorkload(['--slo', `unknown metric ${JSON.stringify(name)} (ttft, tpot, e2el)`])
  }
  return slo
}

export function meetsSlo(record: RequestRecord, slo: Slo): boolean {
  if (record.outcome !== 'completed') return false
  if (slo.ttftMs !== undefined && (record.ttftMs ?? Infinity) > slo.ttftMs) return false
  if (slo.tpotMs !== undefined && record.tpotMs !== undefined && record.tpotMs > slo.tpotMs) return false
  if (slo.e2elMs !== undefined && (record.latencyMs ?? Infinity) > slo.e2elMs) return false
  return true
}

const demandOf = (r: RequestRecord): number =>
  r.inputNumTokens * SERVICE_WEIGHT_INPUT + r.requestedOutputTokens * SERVICE_WEIGHT_OUTPUT
const serviceOf = (r: RequestRecord): number =>
  r.outcome === 'completed'
    ? r.inputNumTokens * SERVICE_WEIGHT_INPUT + (r.outputNumTokens ?? 0) * SERVICE_WEIGHT_OUTPUT
    : 0

export function summarize(
  run: Pick<RunResult, 'records' | 'runtimeMs'> & { warmup?: { runtimeMs: number } | undefined },
  slo: Slo = {},
): BenchSummary {
  const records = run.records
  const completed = records.filter((r) => r.outcome === 'completed')
  const rejected = records.filter((r) => r.outcome === 'rejected')
  const failed = records.filter((r) => r.outcome === 'failed')
  const runtimeSec = run.runtimeMs / 1000
  const perSec = (n: number): number => (runtimeSec > 0 ? n / runtimeSec : 0)
  const column = (pick: (r: RequestRecord) => number | undefined): number[] =>
    completed.map(pick).filter((v): v is number => v !== undefined)
  // vLLM calls describe() once on the DataFrame of all requests, so every column gets the percentiles the
  // request count calls for, even one with fewer values (tpot_ms has none for single-token answers).
  const percentiles = describePercentiles(completed.length)
  const describeColumn = (pick: (r: RequestRecord) => number | undefined): Description =>
    describe(column(pick), percentiles)

  const table = {
    ttft_ms: describeColumn((r) => r.ttftMs),
    tpot_ms: describeColumn((r) => r.tpotMs),
    latency_ms: describeColumn((r) => r.latencyMs),
    input_num_turns: describeColumn((r) => r.inputNumTurns),
    input_num_tokens: describeColumn((r) => r.inputNumTokens),
    input_content_tokens: describeColumn((r) => r.inputContentTokens),
    output_num_tokens: describeColumn((r) => r.outputNumTokens),
    output_num_chunks: describeColumn((r) => r.outputNumChunks),
  }

  const byUser = new Map<string, RequestRecord[]>()
  for (const r of records) {
    const list = byUser.get(r.user) ?? []
    list.push(r)
    byUser.set(r.user, list)
  }
  const names = [...byUser.keys()].sort(naturalCompare)
  const demands = names.map((u) => (byUser.get(u) ?? []).reduce((s, r) => s + demandOf(r), 0))
  const services = names.map((u) => (byUser.get(u) ?? []).reduce((s, r) => s + serviceOf(r), 0))
  const totalService = services.reduce((a, b) => a + b, 0)
  const shares = maxMinFairShares(demands, totalService)
  const users: UserFigures[] = names.map((user, i) => {
    const list = byUser.get(user) ?? []
    const done = list.filter((r) => r.outcome === 'completed')
    const ttfts = done.map((r) => r.ttftMs as number).sort((a, b) => a - b)
    return {
      user,
      requests: list.length,
      completed: done.length,
      rejected: list.filter((r) => r.outcome === 'rejected').length,
      failed: list.filter((r) => r.outcome === 'failed').length,
      responses429: list.reduce((n, r) => n + r.rejectionsMs.length, 0),
      promptTokensServed: done.reduce((n, r) => n + r.inputNumTokens, 0),
      completionTokensServed: done.reduce((n, r) => n + (r.outputNumTokens ?? 0), 0),
      service: services[i] as number,
      demand: demands[i] as number,
      fairShare: shares[i] as number,
      ttftP50Ms: quantile(ttfts, 0.5),
      ttftP99Ms: quantile(ttfts, 0.99),
    }
  })
  // Users held below their demand are the "backlogged" ones VTC's bound speaks of.
  const heldBack = users.filter((u) => u.service < u.demand - 1e-9).map((u) => u.service)
  const count = (list: RequestRecord[], key: (r: RequestRecord) => string): Record<string, number> => {
    const out: Record<string, number> = {}
    for (const r of list) out[key(r)] = (out[key(r)] ?? 0) + 1
    return out
  }
  const good = records.filter((r) => meetsSlo(r, slo)).length
  return {
    runtime_sec: runtimeSec,
    requests_per_sec: perSec(completed.length),
    ...(run.warmup !== undefined
      ? {
          warmup_runtime_sec: run.warmup.runtimeMs / 1000,
          total_runtime_incl_warmup_sec: runtimeSec + run.warmup.runtimeMs / 1000,
        }
      : {}),
    requests: records.length,
    completed: completed.length,
    rejected_429: rejected.length,
    responses_429: records.reduce((n, r) => n + r.rejectionsMs.length, 0),
    rate_429: records.length > 0 ? rejected.length / records.length : 0,
    rejections_by_reason: count(rejected, (r) => r.rejectReason ?? 'unspecified'),
    failed: failed.length,
    failures_by_status: count(failed, (r) => String(r.status)),
    output_tokens_per_sec: perSec(completed.reduce((n, r) => n + (r.outputNumTokens ?? 0), 0)),
    slo,
    goodput_rps: perSec(good),
    goodput_ratio: records.length > 0 ? good / records.length : 0,
    jain_index: jainIndex(users.filter((u) => u.fairShare > 0).map((u) => u.service / u.fairShare)),
    jain_index_raw: jainIndex(services),
    max_service_difference: heldBack.length >= 2 ? Math.max(...heldBack) - Math.min(...heldBack) : 0,
    table,
    input_num_tokens_source: {
      server: completed.filter((r) => r.inputNumTokensSource === 'server').length,
      estimate: completed.filter((r) => r.inputNumTokensSource !== 'server').length,
    },
    users,
  }
}

/** `user-2` before `user-10`. */
export function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true })
}
