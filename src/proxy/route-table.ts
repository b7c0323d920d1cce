import { chatCompletionsRoute, completionsRoute } from './completion-routes.js'
import type { GeneratingRoute } from './generating-route.js'
import { classifyRoute, embeddingsRoute, poolingOutputRoute, rerankRoute, scoreRoute } from './pooling-routes.js'
import { invocationsRoute, responsesRoute } from './responses-route.js'

/**
 * Every path the public listener answers, by class. A request is routed once, on its normalised path
 * (request-target.ts), and its class decides what happens to it before any byte of its body is read
 * (request-gate.ts):
 *
 * - `public`: kvgate's own `/health`, the one route that needs no key (probes have none).
 * - `generating`: vLLM's routes whose requests hold KV (generation, and the pooling routes whose prompts are
 *   prefilled); they go through identity and admission (generation-handler.ts).
 * - `read-only`: vLLM routes that hold no KV and change nothing (`/v1/models`, `/tokenize`, …); passed
 *   through to a usable backend (passthrough.ts), authenticated like every other.
 * - `allowed`: paths the operator allow-listed (`passthrough.allow`), passed through like read-only ones.
 * - anything else is a 404 in OpenAI's shape. vLLM's admin routes (`/reset_prefix_cache`, `/sleep`, the LoRA
 *   loaders, …) and the emulator's `/sim/*` are never forwarded unless allow-listed.
 *
 * The paths themselves are vLLM facts kept in src/core (vllm-routes.ts). A route registered on the public
 * app declares its class in its Fastify config (`config: { routeClass }`); the request gate reads it. A route
 * that declares none is authenticated like `read-only`: forgetting the class can never open a route.
 */
export const ROUTE_CLASSES = ['public', 'generating', 'read-only', 'allowed'] as const
export type RouteClass = (typeof ROUTE_CLASSES)[number]

declare module 'fastify' {
  interface FastifyContextConfig {
    /** How the request gate treats the route (route-table.ts); absent = authenticated, not admitted. */
    routeClass?: RouteClass
  }
}

/** Every generating route, one descriptor each (aliases included they cover `VLLM_GENERATING_PATHS`). */
export const GENERATING_ROUTES: readonly GeneratingRoute[] = Object.freeze([
  chatCompletionsRoute,
  completionsRoute,
  responsesRoute,
  embeddingsRoute,
  poolingOutputRoute,
  classifyRoute,
  scoreRoute,
  rerankRoute,
  invocationsRoute,
])
