export type {
  BackendFigures,
  FaultComponent,
  GatewayMetrics,
  GatewayMetricSources,
  LedgerBackendFigures,
  OutputHintResult,
  PolicyUserFigures,
  PredictorFigures,
  QueueWaitResult,
  WaitCheckFigures,
} from './gateway-metrics.js'
export { createGatewayMetrics, OUTPUT_HINT_RESULTS } from './gateway-metrics.js'
// The outcome list is the error registry's (each error declares its outcome); the metrics use it as labels.
export type { RequestOutcome } from '../errors/index.js'
export { REQUEST_OUTCOMES } from '../errors/index.js'
export { createLogger } from './logger.js'
export type { RoutedFigures, RoutingBackendFigures, RoutingMetrics, RoutingMetricSources } from './routing-metrics.js'
export { createRoutingMetrics, MAX_MODEL_LABELS, OTHER_MODEL_LABEL } from './routing-metrics.js'
export type { BuildInfo } from './process-metrics.js'
export { buildInfo, registerProcessMetrics } from './process-metrics.js'
export type {
  ChildSpan,
  ForwardSpan,
  RequestSpan,
  RequestSpanDetails,
  RequestSpanEnding,
  RequestTracer,
} from './request-tracer.js'
export { NOOP_REQUEST_SPAN, NOOP_REQUEST_TRACER } from './request-tracer.js'
export { createOtlpTracer, type OtlpTracerOptions } from './otlp-tracer.js'
export type { UsageRecord, UsageReport, UsageTally, UserUsage } from './usage-tally.js'
export {
  createUsageTally,
  OTHER_USERS,
  USAGE_BUCKET_MS,
  USAGE_RETENTION_MS,
  USAGE_USERS_PER_BUCKET,
} from './usage-tally.js'
