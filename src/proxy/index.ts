export type { CompletionKind, CompletionRequest } from './completion-request.js'
export { DEFAULT_MODEL_KEY, parseCompletionRequest, upstreamBody } from './completion-request.js'
export type { SseRelay, SseRelayOptions, SseUsage } from './sse-relay.js'
export { createSseRelay } from './sse-relay.js'
export type {
  AdmissionGate,
  AdmissionTicket,
  AdmittedRequest,
  CompletionRouteDeps,
  OutputPredictor,
} from './completion-route.js'
export { createCompletionHandler } from './completion-route.js'
export type { PassthroughOptions } from './passthrough.js'
export { registerPassthrough } from './passthrough.js'
