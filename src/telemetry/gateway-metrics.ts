import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { RequestOutcome } from '../errors/index.js'
import { registerProcessMetrics } from './process-metrics.js'

export type QueueWaitResult = 'admitted' | 'rejected' | 'cancelled'

/** Where a contained fault came from: a policy method, an admission event listener, or the request path itself. */
export const FAULT_COMPONENTS = ['policy', 'listener', 'proxy'] as const
export type FaultComponent = (typeof FAULT_COMPONENTS)[number]

export interface LedgerBackendFigures {
  readonly backend: string
  readonly reservedTokens: number
  readonly reservations: number
  /** Output reserved by admitted requests but not generated yet. */
  readonly ungeneratedTokens?: number
}

export interface BackendFigures {
  readonly id: string
  readonly up: boolean
  readonly capacityTokens: number
  readonly usedTokens: number
  readonly kvUsageRatio: number
  readonly metricsAgeMs: number
  readonly pollErrors: number
  /** Times each fault was seen (`BACKEND_FAULTS` in src/upstream): polls refused, health checks failed. */
  readonly faults?: Readonly<Record<string, number>>
  readonly healthy?: boolean | null
}

export interface PredictorFigures {
  readonly model: string
  readonly outputTokens: number
  readonly coverageRatio: number | undefined
  readonly overReservationRatio: number | undefined
  /** Completions set aside as censored since start (cut by max_tokens below the prediction). */
  readonly censored?: number | undefined
}

export interface PolicyUserFigures {
  /** Already the bounded label. */
  readonly user: string
  readonly counter?: number | undefined
  readonly quotaTokensPerMinute?: number | undefined
}

/** Live state read at scrape time, so gauges never drift from what they describe. */
export interface GatewayMetricSources {
  queueDepth(): number
  ledger(): readonly LedgerBackendFigures[]
  backends(): readonly BackendFigures[]
  predictor(): readonly PredictorFigures[]
  policyUsers(): readonly PolicyUserFigures[]
  /** What raw wait predictions are scaled by, per need bucket (retry-after's median, early rejection's low). */
  waitFactors?(): readonly { readonly bucket: string; readonly median: number; readonly low: number }[]
}

/** A predicted wait checked against what happened (src/admission's WaitCheck). */
export interface WaitCheckFigures {
  /** admitted | expired | rejected (an early rejection, its would-be wait measured afterwards). */
  readonly kind: string
  readonly bucket: string
  readonly predictedMs: number
  readonly actualMs: number
}

export interface GatewayMetrics {
  readonly registry: Registry
  requestEnded(outcome: RequestOutcome, user: string): void
  admitted(user: string): void
  queueWait(result: QueueWaitResult, seconds: number): void
  timeToFirstToken(user: string, seconds: number): void
  requestDuration(user: string, seconds: number): void
  tokensServed(user: string, kind: 'prompt' | 'completion', tokens: number): void
  /** A bug was caught and contained (logged with its stack); the requests it ended count as `internal_error`. */
  internalError(component: FaultComponent): void
  /** A predicted wait checked against what happened. */
  waitChecked(check: WaitCheckFigures): void
  /** A request carried an output-length hint: used (trusted user) or ignored. */
  outputHint(result: OutputHintResult): void
}

export const OUTPUT_HINT_RESULTS = ['used', 'ignored_untrusted'] as const
export type OutputHintResult = (typeof OUTPUT_HINT_RESULTS)[number]

// vLLM's own buckets, so kvgate's TTFT and end-to-end histograms line up with the backend's.
const TTFT_BUCKETS_SECONDS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560,
]
const E2E_BUCKETS_SECONDS = [
  0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680,
]
const WAIT_RATIO_BUCKETS = [0.1, 0.25, 0.5, 0.8, 1, 1.25, 2, 4, 10]
const WAIT_ERROR_BUCKETS_SECONDS = [-30, -10, -5, -2, -1, -0.5, -0.1, 0.1, 0.5, 1, 2, 5, 10, 30]
const QUEUE_WAIT_BUCKETS_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120]

/**
 * kvgate's Prometheus metrics on a Registry of their own (no global default registry: several gateways can
 * live in one process). Event metrics are counted by the caller; state gauges read `sources` when scraped.
 */
export function createGatewayMetrics(sources: GatewayMetricSources): GatewayMetrics {
  const registry = new Registry()
  const registers = [registry]
  registerProcessMetrics(registry)

  const requests = new Counter({
    name: 'kvgate_requests_total',
    help: 'Requests by how they ended (outcome) and user, counted once when a request ends.',
    labelNames: ['outcome', 'user'] as const,
    registers,
  })
  const internalErrors = new Counter({
    name: 'kvgate_internal_errors_total',
    help: 'Exceptions caught and contained (a policy method, an event listener), by component; each is logged.',
    labelNames: ['component'] as const,
    registers,
  })
  // Every series from the start, so an alert on the rate sees 0 rather than nothing.
  for (const component of FAULT_COMPONENTS) internalErrors.inc({ component }, 0)
  const admissions = new Counter({
    name: 'kvgate_admissions_total',
    help: 'Requests admitted to a backend, by user.',
    labelNames: ['user'] as const,
    registers,
  })
  new Gauge({
    name: 'kvgate_queue_depth',
    help: 'Requests waiting in the admission queue.',
    registers,
    collect() {
      this.set(sources.queueDepth())
    },
  })
  const queueWait = new Histogram({
    name: 'kvgate_queue_wait_seconds',
    help: 'Time spent in the admission queue, by result (admitted, rejected, cancelled).',
    labelNames: ['result'] as const,
    buckets: QUEUE_WAIT_BUCKETS_SECONDS,
    registers,
  })
  new Gauge({
    name: 'kvgate_ledger_reserved_tokens',
    help: 'KV tokens reserved by admitted requests that the last poll of the backend cannot see yet.',
    labelNames: ['backend'] as const,
    registers,
    collect() {
      for (const row of sources.ledger()) this.set({ backend: row.backend }, row.reservedTokens)
    },
  })
  new Gauge({
    name: 'kvgate_ledger_ungenerated_tokens',
    help: 'Output tokens reserved by admitted requests but not generated yet (held by no one in the KV cache now).',
    labelNames: ['backend'] as const,
    registers,
    collect() {
      for (const row of sources.ledger()) {
        if (row.ungeneratedTokens !== undefined) this.set({ backend: row.backend }, row.ungeneratedTokens)
      }
    },
  })
  new Gauge({
    name: 'kvgate_ledger_reservations',
    help: 'Live reservations (admitted requests not yet ended), by backend.',
    labelNames: ['backend'] as const,
    registers,
    collect() {
      for (const row of sources.ledger()) this.set({ backend: row.backend }, row.reservations)
    },
  })

  const backendGauge = (name: string, help: string, read: (b: BackendFigures) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: ['backend'] as const,
      registers,
      collect() {
        for (const backend of sources.backends()) this.set({ backend: backend.id }, read(backend))
      },
    })
  }
  backendGauge('kvgate_backend_capacity_tokens', 'KV cache capacity of the backend in tokens.', (b) => b.capacityTokens)
  backendGauge('kvgate_backend_used_tokens', 'KV tokens in use on the backend at the last poll.', (b) => b.usedTokens)
  backendGauge(
    'kvgate_backend_kv_usage_ratio',
    'vLLM kv_cache_usage_perc at the last poll (0-1).',
    (b) => b.kvUsageRatio,
  )
  backendGauge(
    'kvgate_backend_metrics_age_seconds',
    'Seconds since the last good poll of the backend (-1: never).',
    (b) => (Number.isFinite(b.metricsAgeMs) ? b.metricsAgeMs / 1000 : -1),
  )
  backendGauge('kvgate_backend_up', '1 when the last poll of the backend succeeded.', (b) => (b.up ? 1 : 0))

  // A counter fed from the pool's own tally: the pool counts failures, the scrape adds what is new.
  const pollErrorsSeen = new Map<string, number>()
  new Counter({
    name: 'kvgate_backend_poll_errors_total',
    help: 'Failed polls of the backend /metrics.',
    labelNames: ['backend'] as const,
    registers,
    collect() {
      for (const backend of sources.backends()) {
        const seen = pollErrorsSeen.get(backend.id) ?? 0
        this.inc({ backend: backend.id }, Math.max(0, backend.pollErrors - seen))
        pollErrorsSeen.set(backend.id, Math.max(seen, backend.pollErrors))
      }
    },
  })

  const faultsSeen = new Map<string, number>()
  new Counter({
    name: 'kvgate_backend_faults_total',
    help: 'Times a backend was taken out of admission for a fault: usage or capacity it cannot have, a /metrics page too large, a failed /health.',
    labelNames: ['backend', 'fault'] as const,
    registers,
    collect() {
      for (const backend of sources.backends()) {
        for (const [fault, count] of Object.entries(backend.faults ?? {})) {
          const key = `${backend.id}\u0000${fault}`
          const seen = faultsSeen.get(key) ?? 0
          this.inc({ backend: backend.id, fault }, Math.max(0, count - seen))
          faultsSeen.set(key, Math.max(seen, count))
        }
      }
    },
  })
  backendGauge(
    'kvgate_backend_healthy',
    '1 while the last GET /health of the backend passed, 0 once one failed, -1 before the first.',
    (b) => (b.healthy === undefined || b.healthy === null ? -1 : b.healthy ? 1 : 0),
  )

  const predictorGauge = (name: string, help: string, read: (p: PredictorFigures) => number | undefined): void => {
    new Gauge({
      name,
      help,
      labelNames: ['model'] as const,
      registers,
      collect() {
        for (const row of sources.predictor()) {
          const value = read(row)
          if (value !== undefined) this.set({ model: row.model }, value)
        }
      },
    })
  }
  predictorGauge(
    'kvgate_predictor_output_tokens',
    'Predicted completion length (the configured quantile).',
    (p) => p.outputTokens,
  )
  predictorGauge(
    'kvgate_predictor_coverage_ratio',
    'Share of recent requests whose completion was within the prediction.',
    (p) => p.coverageRatio,
  )
  predictorGauge(
    'kvgate_predictor_over_reservation_ratio',
    'Reserved but unused completion tokens over reserved completion tokens, recent requests.',
    (p) => p.overReservationRatio,
  )

  const censoredSeen = new Map<string, number>()
  new Counter({
    name: 'kvgate_predictor_censored_total',
    help: 'Completions cut by their max_tokens below the prediction, set aside rather than learnt from.',
    labelNames: ['model'] as const,
    registers,
    collect() {
      for (const row of sources.predictor()) {
        if (row.censored === undefined) continue
        const seen = censoredSeen.get(row.model) ?? 0
        // A model forgotten and seen again restarts its count: never decrease a counter.
        this.inc({ model: row.model }, Math.max(0, row.censored - seen))
        censoredSeen.set(row.model, Math.max(seen, row.censored))
      }
    },
  })
  const outputHints = new Counter({
    name: 'kvgate_output_hints_total',
    help: 'Requests that carried an output-length hint, by result (used: a trusted user; ignored_untrusted).',
    labelNames: ['result'] as const,
    registers,
  })
  for (const result of OUTPUT_HINT_RESULTS) outputHints.inc({ result }, 0)

  const waitRatio = new Histogram({
    name: 'kvgate_wait_prediction_ratio',
    help: 'Wait that happened over wait predicted on arrival (each +0.1 s), by kind (admitted, expired: a lower bound, rejected: an early rejection measured afterwards) and need bucket. Below 1: predictions ran long.',
    labelNames: ['kind', 'bucket'] as const,
    buckets: WAIT_RATIO_BUCKETS,
    registers,
  })
  const waitError = new Histogram({
    name: 'kvgate_wait_prediction_error_seconds',
    help: 'Predicted minus actual wait of requests whose wait was predicted on arrival, by kind. Positive: predicted too long.',
    labelNames: ['kind'] as const,
    buckets: WAIT_ERROR_BUCKETS_SECONDS,
    registers,
  })
  new Gauge({
    name: 'kvgate_wait_prediction_factor',
    help: 'What raw wait predictions are scaled by, per need bucket and use: retry_after (the median ratio of measured to predicted), early_reject (its 25th percentile; below 1 early rejection backs off).',
    labelNames: ['bucket', 'use'] as const,
    registers,
    collect() {
      for (const row of sources.waitFactors?.() ?? []) {
        this.set({ bucket: row.bucket, use: 'retry_after' }, row.median)
        this.set({ bucket: row.bucket, use: 'early_reject' }, row.low)
      }
    },
  })

  const timeToFirstToken = new Histogram({
    name: 'kvgate_ttft_seconds',
    help: 'Time from arrival at kvgate to the first content token, queue wait included.',
    labelNames: ['user'] as const,
    buckets: TTFT_BUCKETS_SECONDS,
    registers,
  })
  const duration = new Histogram({
    name: 'kvgate_request_duration_seconds',
    help: 'Time from arrival at kvgate to the end of the response.',
    labelNames: ['user'] as const,
    buckets: E2E_BUCKETS_SECONDS,
    registers,
  })
  const tokensServed = new Counter({
    name: 'kvgate_tokens_served_total',
    help: 'Tokens served, by user and kind (prompt, completion).',
    labelNames: ['user', 'kind'] as const,
    registers,
  })
  new Gauge({
    // Not `…_counter`: promtool's lint refuses a gauge named after another metric type (test/deploy checks it).
    name: 'kvgate_policy_virtual_tokens',
    help: 'The virtual token counter of a user under vtc, in weighted tokens.',
    labelNames: ['user'] as const,
    registers,
    collect() {
      this.reset()
      for (const row of sources.policyUsers()) if (row.counter !== undefined) this.set({ user: row.user }, row.counter)
    },
  })
  new Gauge({
    name: 'kvgate_policy_quota_tokens_per_minute',
    help: 'The tokens-per-minute quota in force for a user (tpm, dynamic-tpm).',
    labelNames: ['user'] as const,
    registers,
    collect() {
      this.reset()
      for (const row of sources.policyUsers()) {
        if (row.quotaTokensPerMinute !== undefined) this.set({ user: row.user }, row.quotaTokensPerMinute)
      }
    },
  })

  return {
    registry,
    requestEnded: (outcome, user) => requests.inc({ outcome, user }),
    admitted: (user) => admissions.inc({ user }),
    queueWait: (result, seconds) => queueWait.observe({ result }, seconds),
    timeToFirstToken: (user, seconds) => timeToFirstToken.observe({ user }, seconds),
    requestDuration: (user, seconds) => duration.observe({ user }, seconds),
    tokensServed: (user, kind, tokens) => {
      if (tokens > 0) tokensServed.inc({ user, kind }, tokens)
    },
    internalError: (component) => internalErrors.inc({ component }),
    outputHint: (result) => outputHints.inc({ result }),
    waitChecked: (check) => {
      // The same smoothing as the calibration's, so a zero wait is a finite ratio.
      waitRatio.observe({ kind: check.kind, bucket: check.bucket }, (check.actualMs + 100) / (check.predictedMs + 100))
      waitError.observe({ kind: check.kind }, (check.predictedMs - check.actualMs) / 1000)
    },
  }
}
