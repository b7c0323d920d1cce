import { Exposition, escapeLabel, formatFloat, Histogram, type Sample } from './exposition.js'

export { formatFloat, Histogram }

/**
 * vLLM's `/metrics` as the V1 engine exposes it (`vllm/v1/metrics/loggers.py`), and the OffloadingConnector's
 * (`OffloadPromMetrics`): the same names, types, help, buckets and labels `{engine="0",model_name="…"}`; the
 * gauges are read from the engine at scrape time, not pushed.
 *
 * Several models (`--models a,b`) share one engine: engine-wide series (cache config, prefix cache,
 * preemptions, iteration tokens, offloading) appear once, under the first model's name, so a reader that
 * sums series across engines does not count one KV pool twice; per-request series (tokens, request
 * outcomes, latencies), the request counts and the KV usage (the same value: one pool) appear per model.
 */

export const TTFT_BUCKETS_SECONDS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560,
] as const
export const ITL_BUCKETS_SECONDS = [
  0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80,
] as const
export const REQUEST_LATENCY_BUCKETS_SECONDS = [
  0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680,
] as const

export const ITERATION_TOKENS_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384] as const
export const REQUEST_N_BUCKETS = [1, 2, 5, 10, 20] as const

/** vLLM's `build_1_2_5_buckets(max)`: 1, 2, 5, 10, 20, 50, … up to `max`, for per-request token counts. */
export function build125Buckets(max: number): number[] {
  const buckets: number[] = []
  for (let exponent = 1; ; exponent *= 10) {
    for (const mantissa of [1, 2, 5]) {
      const value = mantissa * exponent
      if (value > max) return buckets
      buckets.push(value)
    }
  }
}

export type FinishedReason = 'stop' | 'length' | 'abort' | 'error'
const FINISHED_REASONS: readonly FinishedReason[] = ['stop', 'length', 'abort', 'error']

/** The OffloadingConnector's transfer directions: `<src medium>_to_<dst medium>`, as its stats name them. */
export type TransferType = 'GPU_to_CPU' | 'CPU_to_GPU'

/** Per direction: `vllm:kv_offload_total_bytes`, `vllm:kv_offload_total_time` and the `vllm:kv_offload_size` histogram. */
export interface TransferStats {
  bytes: number
  seconds: number
  readonly size: Histogram
}

// bytes: OffloadPromMetrics' buckets for the per-transfer size histogram
export const OFFLOAD_SIZE_BUCKETS_BYTES = [1e6, 5e6, 10e6, 20e6, 40e6, 60e6, 80e6, 100e6, 150e6, 200e6] as const

/**
 * Counters and histograms the engine feeds as requests move; gauges come from the engine at scrape. One per
 * model for the per-request fields; the engine-wide fields live in the first model's.
 */
export interface SimMetrics {
  promptTokens: number
  generationTokens: number
  preemptions: number
  /** GPU prefix cache, in tokens, of requests not preempted before (vLLM's `PrefixCacheStats`). */
  prefixCacheQueries: number
  prefixCacheHits: number
  /** The CPU tier, vLLM's "external" (KV connector) prefix cache, counted the same way. */
  externalPrefixCacheQueries: number
  externalPrefixCacheHits: number
  readonly transfers: Readonly<Record<TransferType, TransferStats>>
  readonly requestSuccess: Record<FinishedReason, number>
  readonly iterationTokens: Histogram
  readonly requestPromptTokens: Histogram
  readonly requestGenerationTokens: Histogram
  readonly requestParamsMaxTokens: Histogram
  readonly requestParamsN: Histogram
  readonly ttft: Histogram
  readonly interTokenLatency: Histogram
  readonly timePerOutputToken: Histogram
  readonly e2eLatency: Histogram
  readonly queueTime: Histogram
  readonly inferenceTime: Histogram
  readonly prefillTime: Histogram
  readonly decodeTime: Histogram
}

/** `maxModelLen` sizes the per-request token histograms, as in vLLM. */
export function createSimMetrics(maxModelLen = 8192): SimMetrics {
  const tokenBuckets = build125Buckets(maxModelLen)
  return {
    promptTokens: 0,
    generationTokens: 0,
    preemptions: 0,
    prefixCacheQueries: 0,
    prefixCacheHits: 0,
    externalPrefixCacheQueries: 0,
    externalPrefixCacheHits: 0,
    transfers: {
      GPU_to_CPU: { bytes: 0, seconds: 0, size: new Histogram(OFFLOAD_SIZE_BUCKETS_BYTES) },
      CPU_to_GPU: { bytes: 0, seconds: 0, size: new Histogram(OFFLOAD_SIZE_BUCKETS_BYTES) },
    },
    requestSuccess: { stop: 0, length: 0, abort: 0, error: 0 },
    iterationTokens: new Histogram(ITERATION_TOKENS_BUCKETS),
    requestPromptTokens: new Histogram(tokenBuckets),
    requestGenerationTokens: new Histogram(tokenBuckets),
    requestParamsMaxTokens: new Histogram(tokenBuckets),
    requestParamsN: new Histogram(REQUEST_N_BUCKETS),
    ttft: new Histogram(TTFT_BUCKETS_SECONDS),
    interTokenLatency: new Histogram(ITL_BUCKETS_SECONDS),
    timePerOutputToken: new Histogram(ITL_BUCKETS_SECONDS),
    e2eLatency: new Histogram(REQUEST_LATENCY_BUCKETS_SECONDS),
    queueTime: new Histogram(REQUEST_LATENCY_BUCKETS_SECONDS),
    inferenceTime: new Histogram(REQUEST_LATENCY_BUCKETS_SECONDS),
    prefillTime: new Histogram(REQUEST_LATENCY_BUCKETS_SECONDS),
    decodeTime: new Histogram(REQUEST_LATENCY_BUCKETS_SECONDS),
  }
}

/** One model's series: its per-request metrics and its share of the engine's requests. */
export interface ModelMetrics {
  name: string
  metrics: SimMetrics
  running: number
  waiting: number
}

export interface MetricsRenderContext {
  compat: 'v1' | 'v0'
  kvCacheUsage: number
  /** `vllm:cache_config_info` labels, values already strings as vLLM's `metrics_info()` gives them. */
  cacheConfig: Readonly<Record<string, string>>
  /** Unix seconds when the metrics were created: prometheus_client's `_created` series. */
  createdSeconds: number
  /** Whether the CPU tier (OffloadingConnector) is on: its metrics and the external prefix cache appear. */
  offloading: boolean
}

const TRANSFER_TYPES: readonly TransferType[] = ['GPU_to_CPU', 'CPU_to_GPU']

/** The whole exposition, in vLLM's order; `models[0]` is the primary model, whose metrics hold the engine's. */
export function renderMetrics(models: readonly ModelMetrics[], context: MetricsRenderContext): string {
  const e = new Exposition(context.createdSeconds)
  const engine = models[0]!
  const once = <T>(value: T): Array<Sample<T>> => [[engine.name, undefined, value]]
  const each = <T>(pick: (m: ModelMetrics) => T): Array<Sample<T>> => models.map((m) => [m.name, undefined, pick(m)])
  const histogram = (name: string, help: string, pick: (m: SimMetrics) => Histogram): void =>
    e.histogram(
      name,
      help,
      each((m) => pick(m.metrics)),
    )

  e.gauge(
    'vllm:num_requests_running',
    'Number of requests in model execution batches.',
    each((m) => m.running),
  )
  e.gauge(
    'vllm:num_requests_waiting',
    'Number of requests waiting to be processed.',
    each((m) => m.waiting),
  )
  const usage = each(() => context.kvCacheUsage)
  if (context.compat === 'v0')
    e.gauge('vllm:gpu_cache_usage_perc', 'GPU KV-cache usage. 1 means 100 percent usage.', usage)
  else e.gauge('vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', usage)
  const m = engine.metrics
  e.counter(
    'vllm:prefix_cache_queries',
    'Prefix cache queries, in terms of number of queried tokens.',
    once(m.prefixCacheQueries),
  )
  e.counter(
    'vllm:prefix_cache_hits',
    'Prefix cache hits, in terms of number of cached tokens.',
    once(m.prefixCacheHits),
  )
  if (context.offloading) {
    e.counter(
      'vllm:external_prefix_cache_queries',
      'External prefix cache queries from KV connector cross-instance cache sharing, in terms of number of queried tokens.',
      once(m.externalPrefixCacheQueries),
    )
    e.counter(
      'vllm:external_prefix_cache_hits',
      'External prefix cache hits from KV connector cross-instance cache sharing, in terms of number of cached tokens.',
      once(m.externalPrefixCacheHits),
    )
  }
  e.counter('vllm:num_preemptions', 'Cumulative number of preemption from the engine.', once(m.preemptions))
  e.counter(
    'vllm:prompt_tokens',
    'Number of prefill tokens processed.',
    each((x) => x.metrics.promptTokens),
  )
  e.counter(
    'vllm:generation_tokens',
    'Number of generation tokens processed.',
    each((x) => x.metrics.generationTokens),
  )
  e.counter(
    'vllm:request_success',
    'Count of successfully processed requests.',
    models.flatMap((x) =>
      FINISHED_REASONS.map(
        (reason): Sample<number> => [x.name, { finished_reason: reason }, x.metrics.requestSuccess[reason]],
      ),
    ),
  )
  histogram('vllm:request_prompt_tokens', 'Number of prefill tokens processed.', (x) => x.requestPromptTokens)
  histogram(
    'vllm:request_generation_tokens',
    'Number of generation tokens processed.',
    (x) => x.requestGenerationTokens,
  )
  e.histogram('vllm:iteration_tokens_total', 'Histogram of number of tokens per engine_step.', once(m.iterationTokens))
  histogram('vllm:request_params_n', 'Histogram of the n request parameter.', (x) => x.requestParamsN)
  histogram(
    'vllm:request_params_max_tokens',
    'Histogram of the max_tokens request parameter.',
    (x) => x.requestParamsMaxTokens,
  )
  histogram('vllm:time_to_first_token_seconds', 'Histogram of time to first token in seconds.', (x) => x.ttft)
  histogram(
    'vllm:inter_token_latency_seconds',
    'Histogram of inter-token latency in seconds.',
    (x) => x.interTokenLatency,
  )
  histogram(
    'vllm:request_time_per_output_token_seconds',
    'Histogram of time_per_output_token_seconds per request.',
    (x) => x.timePerOutputToken,
  )
  histogram('vllm:e2e_request_latency_seconds', 'Histogram of e2e request latency in seconds.', (x) => x.e2eLatency)
  histogram(
    'vllm:request_queue_time_seconds',
    'Histogram of time spent in WAITING phase for request.',
    (x) => x.queueTime,
  )
  histogram(
    'vllm:request_inference_time_seconds',
    'Histogram of time spent in RUNNING phase for request.',
    (x) => x.inferenceTime,
  )
  histogram(
    'vllm:request_prefill_time_seconds',
    'Histogram of time spent in PREFILL phase for request.',
    (x) => x.prefillTime,
  )
  histogram(
    'vllm:request_decode_time_seconds',
    'Histogram of time spent in DECODE phase for request.',
    (x) => x.decodeTime,
  )
  // vLLM's info gauge carries the cache config and `engine`, not `model_name`.
  const infoLabels = Object.keys(context.cacheConfig)
    .sort()
    .map((key) => `${key}="${escapeLabel(context.cacheConfig[key]!)}"`)
    .join(',')
  e.out.push('# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig')
  e.out.push('# TYPE vllm:cache_config_info gauge')
  e.out.push(`vllm:cache_config_info{${infoLabels}} 1.0`)
  if (context.offloading) renderOffloadMetrics(e, engine.name, m)
  return `${e.out.join('\n')}\n`
}

/**
 * The OffloadingConnector's transfer metrics (`OffloadPromMetrics`): per `transfer_type`, a series appears
 * once that direction has moved something, as prometheus_client creates labelled children on first use.
 */
function renderOffloadMetrics(e: Exposition, model: string, m: SimMetrics): void {
  const used = TRANSFER_TYPES.filter((t) => m.transfers[t].size.count > 0)
  const samples = <T>(pick: (t: TransferStats) => T): Array<Sample<T>> =>
    used.map((t) => [model, { transfer_type: t }, pick(m.transfers[t])])
  e.counter(
    'vllm:kv_offload_total_bytes',
    'Number of bytes offloaded by KV connector',
    samples((t) => t.bytes),
  )
  e.counter(
    'vllm:kv_offload_total_time',
    'Total time measured by all KV offloading operations',
    samples((t) => t.seconds),
  )
  e.histogram(
    'vllm:kv_offload_size',
    'Histogram of KV offload transfer size, in bytes.',
    samples((t) => t.size),
  )
}
