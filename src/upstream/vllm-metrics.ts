import { parsePrometheusText, type Sample } from './prometheus-text.js'

/** What one poll of a vLLM /metrics tells the gateway. */
export interface VllmMetrics {
  /**
   * Fraction of KV blocks in use (`vllm:kv_cache_usage_perc`, or the pre-0.10 name), as the page says: it is
   * not clamped, so a lie (NaN, −3, +Inf, 7) stays visible and the pool can refuse the backend for it.
   */
  readonly kvUsageRatio: number
  /** `block_size × num_gpu_blocks` from `vllm:cache_config_info`, when exported and self-consistent. */
  readonly capacityTokens: number | undefined
  /**
   * Why `vllm:cache_config_info` cannot be believed, when it cannot: a block count or size that is not a
   * positive whole number, or `num_gpu_blocks` disagreeing with the `num_gpu_blocks_override` vLLM says it
   * was started with (vLLM sizes the pool to the override exactly).
   */
  readonly capacityProblem: string | undefined
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

/** A label that is a positive whole number in decimal digits (`"256"`; not `"1e3"`, `"-1"`, `"NaN"`). */
const positiveInteger = (text: string | undefined): number | undefined => {
  const value = text === undefined || !/^[0-9]{1,20}$/.test(text) ? Number.NaN : Number(text)
  return value > 0 ? value : undefined
}

/** Capacity from the `cache_config_info` rows (one per engine), or why they cannot be believed. */
function readCapacity(rows: readonly Sample[]): {
  tokens: number | undefined
  blockSize: number | undefined
  problem: string | undefined
} {
  let tokens: number | undefined
  let firstBlockSize: number | undefined
  for (const info of rows) {
    const blockSize = positiveInteger(info.labels['block_size'])
    const blocks = positiveInteger(info.labels['num_gpu_blocks'])
    if (blockSize === undefined || blocks === undefined) {
      const shown = (value: string | undefined) => JSON.stringify(String(value).slice(0, 32))
      return {
        tokens: undefined,
        blockSize: undefined,
        problem: `cache_config_info has block_size=${shown(info.labels['block_size'])}, num_gpu_blocks=${shown(info.labels['num_gpu_blocks'])}`,
      }
    }
    const override = info.labels['num_gpu_blocks_override']
    if (override !== undefined && override !== 'None' && positiveInteger(override) !== blocks) {
      return {
        tokens: undefined,
        blockSize: undefined,
        problem: `cache_config_info's num_gpu_blocks (${blocks}) disagrees with its num_gpu_blocks_override (${JSON.stringify(override.slice(0, 32))})`,
      }
    }
    tokens = (tokens ?? 0) + blockSize * blocks
    // Engines of one server share the model's block size; the first one stands for all.
    firstBlockSize ??= blockSize
  }
  // A huge (even unsafe) product stays as it is: the pool's ceiling refuses it with its figure.
  return { tokens, blockSize: firstBlockSize, problem: undefined }
}

/**
 * Read a vLLM /metrics page. Several engines (data parallel) each export their own series: counts and
 * capacities add up, and the usage ratio is their mean
 * (engines of one server are sized alike).
 * Returns undefined when the page has no KV usage at all, which is not a vLLM the gateway can steer. The
 * figures are as the page gives them; whether to believe them is the pool's decision (backend-pool.ts).
 */
export function readVllmMetrics(text: string): VllmMetrics | undefined {
  const samples = parsePrometheusText(text, WANTED)
  const usage = samples.get(VLLM_METRIC_NAMES.kvUsage) ?? samples.get(VLLM_METRIC_NAMES.kvUsageLegacy)
  if (usage === undefined || usage.length === 0) return undefined
  const capacity = readCapacity(samples.get(VLLM_METRIC_NAMES.cacheConfig) ?? [])
  return {
    kvUsageRatio: sum(usage) / usage.length,
    capacityTokens: capacity.tokens,
    capacityProblem: capacity.problem,
    blockSize: capacity.blockSize,
    running: sum(samples.get(VLLM_METRIC_NAMES.running)),
    waiting: sum(samples.get(VLLM_METRIC_NAMES.waiting)),
    promptTokensTotal: sum(samples.get(VLLM_METRIC_NAMES.promptTokens)),
    generationTokensTotal: sum(samples.get(VLLM_METRIC_NAMES.generationTokens)),
    preemptionsTotal: sum(samples.get(VLLM_METRIC_NAMES.preemptions)),
  }
}
