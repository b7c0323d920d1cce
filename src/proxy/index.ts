export type { CompletionKind, CompletionRequest } from './completion-request.js'
export { DEFAULT_MODEL_KEY, parseCompletionRequest, upstreamBody } from './completion-request.js'
export { chatCompletionsRoute, COMPLETION_ROUTES, completionsRoute } from './completion-routes.js'
export { fromFastifyError } from './fastify-errors.js'
export type { GeneratingRoute, GenerationRequest, OutputCount } from './generating-route.js'
export { usageOf } from './generating-route.js'
export type { ProxyDeps } from './generation-handler.js'
export { registerGeneratingRoute } from './generation-handler.js'
export { InFlight } from './in-flight.js'
export type { BodyLimits, BodyParserOptions, JsonScanner } from './json-body.js'
export { createJsonScanner, registerJsonBodyParser } from './json-body.js'
export type { PassthroughDeps } from './passthrough.js'
export { registerAllowedRoutes, registerReadOnlyRoutes } from './passthrough.js'
export {
  classifyRoute,
  embeddingsRoute,
  poolingOutputRoute,
  rerankRoute,
  scoreRoute,
} from './pooling-routes.js'
export type { GateState, RequestGate, RequestGateDeps } from './request-gate.js'
export { createRequestGate, shutdownRefusal } from './request-gate.js'
export type { Ending } from './request-lifecycle.js'
export type { RequestTarget } from './request-target.js'
export { readRequestTarget } from './request-target.js'
export { invocationsRoute, responsesRoute } from './responses-route.js'
export type { RouteClass } from './route-table.js'
export { GENERATING_ROUTES, ROUTE_CLASSES } from './route-table.js'
export { installRequestValidation } from './route-validation.js'
export type { SseRelay, SseRelayOptions, SseUsage } from './sse-relay.js'
export { createSseRelay } from './sse-relay.js'
export { fromUpstreamError } from './upstream-errors.js'
