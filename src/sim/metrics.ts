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

  render(name: string, labels: string, out: string[]): void {
    let cumulative = 0
    for (let i = 0; i < this.bounds.length; i++) {
      cumulative += this.#counts[i]!
      out.push(`${name}_bucket{${labels},le="${formatFloat(this.bounds[i]!)}"} ${formatFloat(cumulative)}`)
    }
    out.push(`${name}_bucket{${labels},le="+Inf"} ${formatFloat(this.#count)}`)
    out.push(`${name}_count{${labels}} ${formatFloat(this.#count)}`)
    out.push(`${name}_sum{${labels}} ${formatFloat(this.#sum)}`)
  }
}

/** Python's float repr as prometheus_client prints it: integers keep a `.0`. */
export function formatFloat(value: number): string {
  if (Number.isInteger(value) && Math.abs(value) < 1e16) return `${value}.0`
  if (value === Number.POSITIVE_INFINITY) return '+Inf'
  if (value === Number.NEGATIVE_INFINITY) return '-Inf'
  return String(value)
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
  readonly ttft: Histogram
  readonly interTokenLatency: Histogram
  readonly timePerOutputToken: Histogram
  readonly e2eLatency: Histogram
  readonly queueTime: Histogram
  readonly prefillTime: Histogram
  readonly decodeTime: Histogram
}

export function createSimMetrics(): SimMetrics {
  return {
    promptTokens: 0,
    generationTokens: 0,
    preemptions: 0,
    prefixCacheQueries: 0,
    prefixCacheHits: 0,
    requestSuccess: { stop: 0, length: 0, abort: 0, error: 0 },
    ttft: new Histogram(TTFT_BUCKETS_SECONDS),
    interTokenLatency: new Histogram(ITL_BUCKETS_SECONDS),
    timePerOutputToken: new Histogram(ITL_BUCKETS_SECONDS),
    e2eLatency: new Histogram(REQUEST_LATENCY_BUCKETS_SECONDS),
    queueTime: new Histogram(REQUEST_LATENCY_BUCKETS_SECONDS),
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
}

function gauge(out: string[], name: string, help: string, labels: string, value: number): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name}{${labels}} ${formatFloat(value)}`)
}

function counter(out: string[], name: string, help: string, labels: string, value: number): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name}{${labels}} ${formatFloat(value)}`)
}

function histogram(out: string[], name: string, help: string, labels: string, h: Histogram): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`)
  h.render(name, labels, out)
}

/** The whole exposition, in vLLM's order. */
export function renderMetrics(metrics: SimMetrics, gauges: SimMetricsGauges, context: MetricsRenderContext): string {
  const labels = `engine="0",model_name="${escapeLabel(context.model)}"`
  const out: string[] = []
  gauge(out, 'vllm:num_requests_running', 'Number of requests in model execution batches.', labels, gauges.running)
  gauge(out, 'vllm:num_requests_waiting', 'Number of requests waiting to be processed.', labels, gauges.waiting)
  if (context.compat === 'v0') {
    gauge(out, 'vllm:gpu_cache_usage_perc', 'GPU KV-cache usage. 1 means 100 percent usage.', labels, gauges.kvCacheUsage)
  } else {
    gauge(out, 'vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', labels, gauges.kvCacheUsage)
  }
  counter(out, 'vllm:prefix_cache_queries_total', 'Prefix cache queries, in terms of number of queried tokens.', labels, metrics.prefixCacheQueries)
  counter(out, 'vllm:prefix_cache_hits_total', 'Prefix cache hits, in terms of number of cached tokens.', labels, metrics.prefixCacheHits)
  counter(out, 'vllm:num_preemptions_total', 'Cumulative number of preemption from the engine.', labels, metrics.preemptions)
  counter(out, 'vllm:prompt_tokens_total', 'Number of prefill tokens processed.', labels, metrics.promptTokens)
  counter(out, 'vllm:generation_tokens_total', 'Number of generation tokens processed.', labels, metrics.generationTokens)
  out.push('# HELP vllm:request_success_total Count of successfully processed requests.')
  out.push('# TYPE vllm:request_success_total counter')
  for (const reason of FINISHED_REASONS) {
    out.push(`vllm:request_success_total{${labels},finished_reason="${reason}"} ${formatFloat(metrics.requestSuccess[reason])}`)
  }
  histogram(out, 'vllm:time_to_first_token_seconds', 'Histogram of time to first token in seconds.', labels, metrics.ttft)
  histogram(out, 'vllm:inter_token_latency_seconds', 'Histogram of inter-token latency in seconds.', labels, metrics.interTokenLatency)
  histogram(out, 'vllm:request_time_per_output_token_seconds', 'Histogram of time_per_output_token_seconds per request.', labels, metrics.timePerOutputToken)
  histogram(out, 'vllm:e2e_request_latency_seconds', 'Histogram of e2e request latency in seconds.', labels, metrics.e2eLatency)
  histogram(out, 'vllm:request_queue_time_seconds', 'Histogram of time spent in WAITING phase for request.', labels, metrics.queueTime)
  histogram(out, 'vllm:request_prefill_time_seconds', 'Histogram of time spent in PREFILL phase for request.', labels, metrics.prefillTime)
  histogram(out, 'vllm:request_decode_time_seconds', 'Histogram of time spent in DECODE phase for request.', labels, metrics.decodeTime)
  const infoLabels = Object.keys(context.cacheConfig)
    .sort()
    .map((key) => `${key}="${escapeLabel(context.cacheConfig[key]!)}"`)
    .join(',')
  out.push('# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig')
  out.push('# TYPE vllm:cache_config_info gauge')
  out.push(`vllm:cache_config_info{${infoLabels}} 1.0`)
  return out.join('\n') + '\n'
}
