import type { FastifyInstance } from 'fastify'
import { toKvgateError } from '../errors/index.js'

export interface ModelsRouteOptions {
  /** The union of the fleet's pools, as `GET /v1/models` answers it; throws 503 while no list is known. */
  listModels(): { object: 'list'; data: readonly Record<string, unknown>[] }
}

/**
 * `GET /v1/models` through kvgate: every model any backend serves (base models, aliases, LoRA adapters),
 * once, with the card the first backend listing it wrote. Answered by kvgate rather than passed through to
 * one backend, which would list only its own pool. A static route, so it wins over the pass-through catch-all;
 * authentication, like every route's, happens before it (onRequest).
 */
export function registerModelsRoute(app: FastifyInstance, options: ModelsRouteOptions): void {
  app.get('/v1/models', { config: { routeClass: 'read-only' } }, async (_request, reply) => {
    try {
      return options.listModels()
    } catch (err) {
      const error = toKvgateError(err)
      return reply.code(error.statusCode).headers(error.headers).send(error.toBody())
    }
  })
}
