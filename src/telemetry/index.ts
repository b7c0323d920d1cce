export type {
  BackendFigures,
  GatewayMetrics,
  GatewayMetricSources,
  LedgerBackendFigures,
  PolicyUserFigures,
  PredictorFigures,
  QueueWaitResult,
  RequestOutcome,
} from './gateway-metrics.js'
export { createGatewayMetrics, REQUEST_OUTCOMES } from './gateway-metrics.js'
export { createLogger } from './logger.js'
