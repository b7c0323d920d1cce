/**
 * kvgate sim: a vLLM emulator with the same OpenAI API, SSE format and `/metrics` as vLLM (V1 engine,
 * 0.11), a KV block pool with continuous batching, chunked prefill, recompute preemption and prefix
 * caching, and a step-time model. Tests, benchmarks and the demo run against it. It deliberately imports
 * nothing from the gateway (predictor, policies, ledger), so it never checks kvgate against itself.
 *
 * HTTP (as vLLM): `POST /v1/chat/completions`, `POST /v1/completions` (streaming or not; `max_tokens`,
 * `max_completion_tokens`, `min_tokens`, `ignore_eos`, `stream_options`, `n`, `stop`, `seed`, `request_id`
 * or `X-Request-Id`, `priority` 0 only, `vllm_xargs`; other sampling fields are accepted and ignored),
 * `GET /metrics`, `GET /health`, `GET /version`, `GET /v1/models`, `POST /tokenize`, `POST /detokenize`.
 *
 * Out of band (the bench's wire contract): `"vllm_xargs": {"kvgate_sim_output_tokens": N}` in a generation
 * body is the answer's natural length (`OUTPUT_TOKENS_XARG`); see docs/sim.md.
 *
 * Options as data: `SIM_OPTION_DEFINITIONS` lists every option with its flag, type, default and help;
 * `addSimOptions` / `collectSimOptions` let another command (the bench) pass them all through.
 * HTTP (emulator only): `POST /sim/faults` (a partial `FaultConfig`, merged; answers the whole config),
 * `GET /sim/faults`, `GET /sim/state` (`engineState()` plus process memory; `?gc=1` collects first when run
 * with `--expose-gc`).
 *
 * Configuration file (`kvgate sim --config FILE`, YAML or JSON; flags win over the file):
 *
 * ```yaml
 * model: llama-3.1-8b
 * numGpuBlocks: 2048          # blocks of blockSize tokens
 * maxNumSeqs: 256
 * latency: { stepFixedMs: 8, prefillTokenMs: 0.03, runningSeqMs: 0.1, contextTokenMs: 0.00005 }
 * outputLength: { type: lognormal, average: 256, medianRatio: 0.85, max: 4096 }   # or constant / uniform
 * faults: { errorRate: 0.01, streamCutRate: 0, latencySpikeRate: 0.001, latencySpikeMs: 2000 }
 * ```
 *
 * Time: every duration is in emulated milliseconds; at `speed` X the emulator's clock (and so its step
 * times, its latency histograms and `metricsDelayMs`) runs X times faster than real time.
 */
export type {
  SimOptions,
  LatencyModel,
  OutputLengthDistribution,
  FaultConfig,
  LoraModule,
  MetricOverrideValue,
} from './options.js'
export { DEFAULT_LATENCY, DEFAULT_OUTPUT_LENGTH, DEFAULT_FAULTS, SIM_DEFAULTS } from './options.js'
export type { SimOptionDefinition, SimOptionType } from './option-definitions.js'
export { SIM_OPTION_DEFINITIONS } from './option-definitions.js'
export type { SimFlagsOptions } from './sim-flags.js'
export { addSimOptions, collectSimOptions, simOptionAttribute } from './sim-flags.js'
export { OUTPUT_TOKENS_XARG } from './generation.js'
export type { SimHandle, SimHooks } from './server.js'
export { startSim } from './server.js'
export { EMULATED_VLLM_VERSION } from './vllm-protocol.js'
export type { EngineState } from './engine.js'
export { createSimCommand } from './command.js'
export { validateSimOptions, loadSimConfigFile } from './sim-config.js'
export { checkSimOptionCombinations } from './option-checks.js'
