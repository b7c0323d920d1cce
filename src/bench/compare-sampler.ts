import { request } from 'undici'
import type { Clock } from '../core/index.js'

export interface MetricsSample {
  /** ms after the setup's run started, on the run's (possibly scaled) clock. */
  tMs: number
  /** Mean over the backends that answered (one backend: its own figure). */
  kvUsage?: number
  /** Each backend's `kv_cache_usage_perc`, in the setup's backend order (null: it did not answer). */
  kvUsageByBackend?: (number | null)[]
  /** Summed over the backends, as are the counters below. */
  backendWaiting?: number
  backendRunning?: number
  preemptions?: number
  /** vLLM's prefix-cache counters, in tokens. */
  prefixCacheHits?: number
  prefixCacheQueries?: number
  kvgateQueueDepth?: number
  kvgateReservedTokens?: number
  /** Output kvgate reserved that no request has generated yet (KV idle now, held for later). */
  kvgateUngeneratedTokens?: number
}

/** Sum of each metric's samples over labels, from Prometheus text (only the simple lines compare reads). */
export function parsePrometheusTotals(text: string): Map<string, number> {
  const totals = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue
    const match = /^([A-Za-z_:][\w:]*)(?:\{[^}]*\})?\s+(\S+)/.exec(line)
    if (match === null) continue
    const value = Number(match[2])
    if (!Number.isFinite(value)) continue
    totals.set(match[1] as string, (totals.get(match[1] as string) ?? 0) + value)
  }
  return totals
}

export async function scrape(url: string): Promise<Map<string, number> | undefined> {
  try {
    const res = await request(`${url}/metrics`, { headersTimeout: 2000, bodyTimeout: 2000 })
    if (res.statusCode !== 200) {
      await res.body.dump()
      return undefined
    }
    return parsePrometheusTotals(await res.body.text())
  } catch {
    return undefined
  }
}

/** Several emulators list one model each; a page with several models' series counts their gauges once each. */
const kvUsageOf = (page: Map<string, number> | undefined): number | undefined =>
  page?.get('vllm:kv_cache_usage_perc') ?? page?.get('vllm:gpu_cache_usage_perc')

const sumOf = (pages: readonly (Map<string, number> | undefined)[], name: string): number | undefined => {
  let total: number | undefined
  for (const page of pages) {
    const value = page?.get(name)
    if (value !== undefined) total = (total ?? 0) + value
  }
  return total
}

/**
 * Sample the setup's backends' and kvgate's /metrics every `intervalMs` (emulated) for the report's charts
 * and the fleet figures (KV balance, prefix-cache hit rate). A slow scrape skips a tick rather than piling up.
 */
export function startSampler(clock: Clock, intervalMs: number, backendUrls: readonly string[], gatewayUrl?: string) {
  const origin = clock.now()
  const samples: MetricsSample[] = []
  let busy = false
  const take = async (): Promise<void> => {
    if (busy) return
    busy = true
    const tMs = clock.now() - origin
    const [gateway, ...backends] = await Promise.all([
      gatewayUrl === undefined ? undefined : scrape(gatewayUrl),
      ...backendUrls.map(scrape),
    ])
    const sample: MetricsSample = { tMs }
    const usages = backends.map((page) => kvUsageOf(page) ?? null)
    const answered = usages.filter((u): u is number => u !== null)
    if (answered.length > 0) sample.kvUsage = answered.reduce((a, b) => a + b, 0) / answered.length
    if (backends.length > 1) sample.kvUsageByBackend = usages
    const fields = [
      ['backendWaiting', 'vllm:num_requests_waiting'],
      ['backendRunning', 'vllm:num_requests_running'],
      ['preemptions', 'vllm:num_preemptions_total'],
      ['prefixCacheHits', 'vllm:prefix_cache_hits_total'],
      ['prefixCacheQueries', 'vllm:prefix_cache_queries_total'],
    ] as const
    for (const [field, name] of fields) {
      const value = sumOf(backends, name)
      if (value !== undefined) sample[field] = value
    }
    const depth = gateway?.get('kvgate_queue_depth')
    if (depth !== undefined) sample.kvgateQueueDepth = depth
    const reserved = gateway?.get('kvgate_ledger_reserved_tokens')
    if (reserved !== undefined) sample.kvgateReservedTokens = reserved
    const ungenerated = gateway?.get('kvgate_ledger_ungenerated_tokens')
    if (ungenerated !== undefined) sample.kvgateUngeneratedTokens = ungenerated
    samples.push(sample)
    busy = false
  }
  void take()
  const timer = clock.setInterval(() => void take(), intervalMs)
  return {
    samples,
    async stop(): Promise<void> {
      clock.clearInterval(timer)
      while (busy) await new Promise((resolve) => setTimeout(resolve, 5))
      await take()
    },
  }
}

/** Growth of a counter over the samples that have it (0 with fewer than two). */
function growth(samples: readonly MetricsSample[], pick: (s: MetricsSample) => number | undefined): number {
  const values = samples.map(pick).filter((v): v is number => v !== undefined)
  return values.length > 1 ? Math.max(...values) - Math.min(...values) : 0
}

/** The fleet figures of one setup, from its samples. */
export interface FleetFigures {
  readonly preemptions: number
  readonly maxKvUsage: number
  /** Prefix-cache hits over queries (tokens) during the run, across the backends; undefined without queries. */
  readonly prefixCacheHitRate: number | undefined
  /** Each backend's mean KV usage over the run. */
  readonly meanKvUsageByBackend: readonly number[]
  /** max − min of `meanKvUsageByBackend` (0 for one backend). */
  readonly kvBalance: number
}

export function fleetFigures(samples: readonly MetricsSample[], backends: number): FleetFigures {
  const queries = growth(samples, (s) => s.prefixCacheQueries)
  const means: number[] = []
  for (let b = 0; b < backends; b++) {
    const values = samples
      .map((s) => (backends === 1 ? s.kvUsage : s.kvUsageByBackend?.[b]))
      .filter((v): v is number => typeof v === 'number')
    means.push(values.length > 0 ? values.reduce((x, y) => x + y, 0) / values.length : 0)
  }
  return {
    preemptions: growth(samples, (s) => s.preemptions),
    maxKvUsage: Math.max(
      0,
      ...samples.map((s) => Math.max(s.kvUsage ?? 0, ...(s.kvUsageByBackend ?? []).map((v) => v ?? 0))),
    ),
    prefixCacheHitRate: queries > 0 ? growth(samples, (s) => s.prefixCacheHits) / queries : undefined,
    meanKvUsageByBackend: means,
    kvBalance: means.length > 1 ? Math.max(...means) - Math.min(...means) : 0,
  }
}
