import { Type } from 'typebox'
import { createRouterOptionsParser } from './options.js'
import { fits, type Router, type RouterContext } from './router.js'

export const roundRobinOptionsSchema = Type.Unsafe<Record<string, never>>(
  Type.Object({}, { additionalProperties: false }),
)
const parseOptions = createRouterOptionsParser(roundRobinOptionsSchema)

/**
 * Each pool's backends in turn, as a plain load balancer spreads requests: the next backend after the one
 * the pool's last admission went to, skipping those the request does not fit now (so a full replica does not
 * hold the queue while another has room). The turn is kept per model, by backend name.
 */
export function createRoundRobinRouter(context: RouterContext): Router {
  parseOptions(context.options)
  const lastByModel = new Map<string, string>()
  return {
    name: 'round-robin',
    choose(request, candidates) {
      const last = lastByModel.get(request.model)
      // After the last one chosen; from the first when it has left the pool (or nothing was chosen yet).
      const start = last === undefined ? 0 : candidates.findIndex((c) => c.backendId === last) + 1
      for (let i = 0; i < candidates.length; i++) {
        const c = candidates[(start + i) % candidates.length]
        if (c !== undefined && fits(request, c)) {
          return { backendId: c.backendId, reason: 'round-robin', sharedTokens: 0, expectedHitTokens: 0 }
        }
      }
      return undefined
    },
    onAdmitted(request, choice) {
      lastByModel.set(request.model, choice.backendId)
    },
    onFinished() {},
    onBackendReset() {},
    stats: () => ({}),
  }
}
