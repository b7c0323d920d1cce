export type {
  BackendCapacity,
  BackendFault,
  BackendPool,
  BackendPoolOptions,
  BackendState,
  PollReconciler,
} from './backend-pool.js'
export { BACKEND_FAULTS, createBackendPool } from './backend-pool.js'
export type { VllmMetrics } from './vllm-metrics.js'
export { readVllmMetrics, VLLM_METRIC_NAMES } from './vllm-metrics.js'
export type { Sample } from './prometheus-text.js'
export { parsePrometheusText } from './prometheus-text.js'
export type { BackendModels, ModelDirectory, ModelDirectoryOptions, ServedModel } from './served-models.js'
export { createModelDirectory, MAX_MODELS_PER_BACKEND, readModelCards } from './served-models.js'
export type { BackendDiagnosis, BackendReadiness } from './backend-diagnosis.js'
export { BACKEND_READINESS, diagnoseBackend } from './backend-diagnosis.js'
