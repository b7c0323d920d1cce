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
export type { BackendDiagnosis, BackendReadiness } from './backend-diagnosis.js'
export { BACKEND_READINESS, diagnoseBackend } from './backend-diagnosis.js'
