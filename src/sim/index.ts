/**
 * kvgate sim: a vLLM emulator with the same OpenAI API, SSE format and `/metrics` as vLLM, a KV block pool
 * with continuous batching, preemption and prefix caching, and a step-time model. Tests, benchmarks and the
 * demo run against it. It deliberately imports nothing from the gateway (predictor, policies, ledger), so
 * it never checks kvgate against itself.
 */
export type { SimOptions, LatencyModel, OutputLengthDistribution, FaultConfig } from './options.js'
export { DEFAULT_LATENCY, DEFAULT_OUTPUT_LENGTH, DEFAULT_FAULTS, SIM_DEFAULTS } from './options.js'
export type { SimHandle, SimHooks } from './server.js'
export { startSim } from './server.js'
export { EMULATED_VLLM_VERSION } from './vllm-protocol.js'
export type { EngineState } from './engine.js'
export { createSimCommand } from './command.js'
export { validateSimOptions, loadSimConfigFile } from './sim-config.js'
