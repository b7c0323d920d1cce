import { parsePrometheusText, type Sample } from './prometheus-text.js'

/** What one poll of a vLLM /metrics tells the gateway. */
export interface VllmMetrics {
  /** Fraction 0–1 of KV blocks in use (`vllm:kv_cache_usage_perc`, or the pre-0.10 name). */
  readonly kvUsageRatio: number
  /** `block_size × num_gpu_blocks` from `vllm:cache_config_info`, when exported. */
  readonly capacityTokens: number | undefined
  /** Tokens per KV block (`block_size` of `vllm:cache_config_info`), when exported. */
  readonly blockSize: number | undefined
  readonly running: number
  readonly waiting: number
  /** Counters, for the served-tokens rate. */
  readonly promptTokensTotal: number
  readonly generationTokensTotal: number
  readonly preemptionsTotal: number
}

export const VLLM_METRIC_NAMES = Object.freeze({
  kvUsage: 'vllm:kv_cache_usage_perc',
  kvUsageLegacy: 'vllm:gpu_cache_usage_perc',
  cacheConfig: 'vllm:cache_config_info',
  running: 'vllm:num_requests_running',
  waiting: 'vllm:num_requests_waiting',
  promptTokens: 'vllm:prompt_tokens_total',
  generationTokens: 'vllm:generation_tokens_total',
  preemptions: 'vllm:num_preemptions_total',
})

const WANTED = new Set(Object.values(VLLM_METRIC_NAMES))

const sum = (samples: readonly Sample[] | undefined): number =>
  (samples ?? []).reduce((total, sample) => total + sample.value, 0)

/**
 * Read a vLLM /metrics page. Several engines (data parallel) each export their own series: counts and
 * capacities add up, and the usage ratio is their mean
 * (engines of one server are sized alike).
 * Returns undefined when the page has no KV usage at all, which is not a vLLM the gateway can steer.
 */
export function readVllmMetrics(text: string): VllmMetrics | undefined {
  const samples = parsePrometheusText(text, WANTED)
  const usage = samples.get(VLLM_METRIC_NAMES.kvUsage) ?? samples.get(VLLM_METRIC_NAMES.kvUsageLegacy)
  if (usage === undefined || usage.length === 0) return undefined

  let capacityTokens: number | undefined
  let blockSize: number | undefined
  for (const info of samples.get(VLLM_METRIC_NAMES.cacheConfig) ?? []) {
    const size = Number(info.labels['block_size'])
    const numGpuBlocks = Number(info.labels['num_gpu_blocks'])
    if (Number.isFinite(size) && Number.isFinite(numGpuBlocks) && size > 0 && numGpuBlocks > 0) {
      capacityTokens = (capacityTokens ?? 0) + size * numGpuBlocks
      // Engines of one server share the model's block size; the first one stands for all.
      if (Number.isInteger(size)) blockSize ??= size
    }
  }
  const kvUsageRatio = Math.min(1, Math.max(0, sum(usage) / usage.length))
  return {
    kvUsageRatio: Number.isFinite(kvUsageRatio) ? kvUsageRatio : 0,
    capacityTokens,
    blockSize,
    running: sum(samples.get(VLLM_METRIC_NAMES.running)),
    waiting: sum(samples.get(VLLM_METRIC_NAMES.waiting)),
    promptTokensTotal: sum(samples.get(VLLM_METRIC_NAMES.promptTokens)),
    generationTokensTotal: sum(samples.get(VLLM_METRIC_NAMES.generationTokens)),
    preemptionsTotal: sum(samples.get(VLLM_METRIC_NAMES.preemptions)),
  }
}
