/**
 * vLLM's `/metrics` as the V1 engine exposes it (`vllm/v1/metrics/loggers.py`), written out by hand rather
 * than with prom-client: the exposition has to match Python's `prometheus_client` byte for byte where a
 * scraper looks (metric names with `_total` on counters, floats printed as `1.0`, labels
 * `{engine="0",model_name="…"}`), and the gauges are read from the engine at scrape time, not pushed.
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

/** A Prometheus histogram: per-bucket counts (non-cumulative until rendered), sum and count. */
export class Histogram {
  readonly bounds: readonly number[]
  readonly #counts: Float64Array
  #sum = 0
  #count = 0

  constructor(bounds: readonly number[]) {
    this.bounds = bounds
    this.#counts = new Float64Array(bounds.length)
  }

  observe(value: number): void {
    this.#sum += value
    this.#count++
    // Buckets are short (≤ 22); a linear scan beats a binary search at this size.
    const bounds = this.bounds
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.#counts[i]!++
        return
      }
    }
  }

  get count(): number {
    return this.#count
  }

  get sum(): number {
    return this.#sum
  }

  /** `labels` renders a label set with `le` merged in alphabetical order (prometheus_client sorts them). */
  render(name: string, labels: (le?: string) => string, out: string[]): void {
    let cumulative = 0
    for (let i = 0; i < this.bounds.length; i++) {
      cumulative += this.#counts[i]!
      out.push(`${name}_bucket{${labels(formatFloat(this.bounds[i]!))}} ${formatFloat(cumulative)}`)
    }
    out.push(`${name}_bucket{${labels('+Inf')}} ${formatFloat(this.#count)}`)
    out.push(`${name}_count{${labels()}} ${formatFloat(this.#count)}`)
    out.push(`${name}_sum{${labels()}} ${formatFloat(this.#sum)}`)
  }
}

/** Python's `repr(float)`: integers keep `.0`, exponents below 1e-4 and from 1e16, two-digit exponents. */
function pythonRepr(value: number): string {
  if (Number.isInteger(value) && Math.abs(value) < 1e16) return `${value}.0`
  const abs = Math.abs(value)
  if (abs !== 0 && (abs < 1e-4 || abs >= 1e16)) {
    const [mantissa, exponent] = value.toExponential().split('e') as [string, string]
    const sign = exponent.startsWith('-') ? '-' : '+'
    return `${mantissa}e${sign}${exponent.replace(/^[+-]/, '').padStart(2, '0')}`
  }
  return String(value)
}

/**
 * prometheus_client's `floatToGoString`: Python's repr, except that positive values with more than six
 * digits before the point switch to Go's exponent form (`1234567.0` → `1.234567e+06`), as vLLM's counters
 * and `_created` timestamps appear on a real `/metrics`.
 */
export function formatFloat(value: number): string {
  if (value === Number.POSITIVE_INFINITY) return '+Inf'
  if (value === Number.NEGATIVE_INFINITY) return '-Inf'
  if (Number.isNaN(value)) return 'NaN'
  const repr = pythonRepr(value)
  const dot = repr.indexOf('.')
  if (value > 0 && dot > 6 && !repr.includes('e')) {
    const mantissa = `${repr[0]}.${repr.slice(1, dot)}${repr.slice(dot + 1)}`.replace(/[0.]+$/, '')
    return `${mantissa}e+0${dot - 1}`
  }
  return repr
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
}

/** Counters and histograms the engine feeds as requests move; gauges come from `SimMetricsGauges` at scrape. */
export interface SimMetrics {
  promptTokens: number
  generationTokens: number
  preemptions: number
  prefixCacheQueries: number
  prefixCacheHits: number
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

export interface SimMetricsGauges {
  running: number
  waiting: number
  kvCacheUsage: number
}

export interface MetricsRenderContext {
  model: string
  compat: 'v1' | 'v0'
  /** `vllm:cache_config_info` labels, values already strings as vLLM's `metrics_info()` gives them. */
  cacheConfig: Readonly<Record<string, string>>
  /** Unix seconds when the metrics were created: prometheus_client's `_created` series. */
  createdSeconds: number
}

/** Renders `# HELP`/`# TYPE` blocks the way prometheus_client's text exposition does. */
class Exposition {
  readonly out: string[] = []
  readonly #model: string
  readonly #created: string

  constructor(model: string, createdSeconds: number) {
    this.#model = escapeLabel(model)
    this.#created = formatFloat(createdSeconds)
  }

  /** The common labels with any extra ones, in alphabetical order. */
  labels(extra?: Readonly<Record<string, string>>): string {
    const pairs: Array<[string, string]> = [
      ['engine', '0'],
      ['model_name', this.#model],
    ]
    if (extra !== undefined) for (const [key, value] of Object.entries(extra)) pairs.push([key, escapeLabel(value)])
    pairs.sort((a, b) => (a[0] < b[0] ? -1 : 1))
    return pairs.map(([key, value]) => `${key}="${value}"`).join(',')
  }

  gauge(name: string, help: string, value: number): void {
    this.out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name}{${this.labels()}} ${formatFloat(value)}`)
  }

  /** A counter (`base_total`) with one sample per label set, then its `base_created` gauge. */
  counter(
    base: string,
    help: string,
    samples: ReadonlyArray<[Readonly<Record<string, string>> | undefined, number]>,
  ): void {
    this.out.push(`# HELP ${base}_total ${help}`, `# TYPE ${base}_total counter`)
    for (const [extra, value] of samples) this.out.push(`${base}_total{${this.labels(extra)}} ${formatFloat(value)}`)
    this.#createdSeries(
      base,
      help,
      samples.map(([extra]) => extra),
    )
  }

  histogram(name: string, help: string, h: Histogram): void {
    this.out.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`)
    h.render(name, (le) => this.labels(le === undefined ? undefined : { le }), this.out)
    this.#createdSeries(name, help, [undefined])
  }

  #createdSeries(
    base: string,
    help: string,
    labelSets: ReadonlyArray<Readonly<Record<string, string>> | undefined>,
  ): void {
    this.out.push(`# HELP ${base}_created ${help}`, `# TYPE ${base}_created gauge`)
    for (const extra of labelSets) this.out.push(`${base}_created{${this.labels(extra)}} ${this.#created}`)
  }
}

/** The whole exposition, in vLLM's order. */
export function renderMetrics(metrics: SimMetrics, gauges: SimMetricsGauges, context: MetricsRenderContext): string {
  const e = new Exposition(context.model, context.createdSeconds)
  e.gauge('vllm:num_requests_running', 'Number of requests in model execution batches.', gauges.running)
  e.gauge('vllm:num_requests_waiting', 'Number of requests waiting to be processed.', gauges.waiting)
  if (context.compat === 'v0') {
    e.gauge('vllm:gpu_cache_usage_perc', 'GPU KV-cache usage. 1 means 100 percent usage.', gauges.kvCacheUsage)
  } else {
    e.gauge('vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', gauges.kvCacheUsage)
  }
  e.counter('vllm:prefix_cache_queries', 'Prefix cache queries, in terms of number of queried tokens.', [
    [undefined, metrics.prefixCacheQueries],
  ])
  e.counter('vllm:prefix_cache_hits', 'Prefix cache hits, in terms of number of cached tokens.', [
    [undefined, metrics.prefixCacheHits],
  ])
  e.counter('vllm:num_preemptions', 'Cumulative number of preemption from the engine.', [
    [undefined, metrics.preemptions],
  ])
  e.counter('vllm:prompt_tokens', 'Number of prefill tokens processed.', [[undefined, metrics.promptTokens]])
  e.counter('vllm:generation_tokens', 'Number of generation tokens processed.', [[undefined, metrics.generationTokens]])
  e.counter(
    'vllm:request_success',
    'Count of successfully processed requests.',
    FINISHED_REASONS.map((reason) => [{ finished_reason: reason }, metrics.requestSuccess[reason]]),
  )
  e.histogram('vllm:request_prompt_tokens', 'Number of prefill tokens processed.', metrics.requestPromptTokens)
  e.histogram(
    'vllm:request_generation_tokens',
    'Number of generation tokens processed.',
    metrics.requestGenerationTokens,
  )
  e.histogram('vllm:iteration_tokens_total', 'Histogram of number of tokens per engine_step.', metrics.iterationTokens)
  e.histogram('vllm:request_params_n', 'Histogram of the n request parameter.', metrics.requestParamsN)
  e.histogram(
    'vllm:request_params_max_tokens',
    'Histogram of the max_tokens request parameter.',
    metrics.requestParamsMaxTokens,
  )
  e.histogram('vllm:time_to_first_token_seconds', 'Histogram of time to first token in seconds.', metrics.ttft)
  e.histogram(
    'vllm:inter_token_latency_seconds',
    'Histogram of inter-token latency in seconds.',
    metrics.interTokenLatency,
  )
  e.histogram(
    'vllm:request_time_per_output_token_seconds',
    'Histogram of time_per_output_token_seconds per request.',
    metrics.timePerOutputToken,
  )
  e.histogram('vllm:e2e_request_latency_seconds', 'Histogram of e2e request latency in seconds.', metrics.e2eLatency)
  e.histogram(
    'vllm:request_queue_time_seconds',
    'Histogram of time spent in WAITING phase for request.',
    metrics.queueTime,
  )
  e.histogram(
    'vllm:request_inference_time_seconds',
    'Histogram of time spent in RUNNING phase for request.',
    metrics.inferenceTime,
  )
  e.histogram(
    'vllm:request_prefill_time_seconds',
    'Histogram of time spent in PREFILL phase for request.',
    metrics.prefillTime,
  )
  e.histogram(
    'vllm:request_decode_time_seconds',
    'Histogram of time spent in DECODE phase for request.',
    metrics.decodeTime,
  )
  const infoLabels = Object.keys(context.cacheConfig)
    .sort()
    .map((key) => `${key}="${escapeLabel(context.cacheConfig[key]!)}"`)
    .join(',')
  e.out.push('# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig')
  e.out.push('# TYPE vllm:cache_config_info gauge')
  e.out.push(`vllm:cache_config_info{${infoLabels}} 1.0`)
  return `${e.out.join('\n')}\n`
}
