import { Type } from 'typebox'
import { createRouterOptionsParser } from './options.js'
import { fits, type Router, type RouterContext } from './router.js'

// most-room has no knobs; the empty schema still rejects unknown options so a typo is not silently ignored.
export const mostRoomOptionsSchema = Type.Unsafe<Record<string, never>>(
  Type.Object({}, { additionalProperties: false }),
)
const parseOptions = createRouterOptionsParser(mostRoomOptionsSchema)

/**
 * The backend with the most room after headroom and the ledger, when the request fits there (kvgate's
 * choice before routing was pluggable). With identical replicas it keeps the most room for the next, larger
 * request; it knows nothing of prefix caches, so a conversation's turns land wherever room happens to be.
 * Equal rooms go to the first backend listed.
 */
export function createMostRoomRouter(context: RouterContext): Router {
  parseOptions(context.options)
  return {
    name: 'most-room',
    choose(request, candidates) {
      let best = candidates[0]
      for (const c of candidates) if (best === undefined || c.roomTokens > best.roomTokens) best = c
      if (best === undefined || !fits(request, best)) return undefined
      return { backendId: best.backendId, reason: 'most-room', sharedTokens: 0, expectedHitTokens: 0 }
    },
    onAdmitted() {},
    onFinished() {},
    onBackendReset() {},
    stats: () => ({}),
  }
}
