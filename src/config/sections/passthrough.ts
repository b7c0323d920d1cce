import { Type } from 'typebox'
import { ROUTED_PATHS } from '../../core/index.js'

/**
 * A normalised path (no `.` or `..` segment, no empty segment, no trailing slash), optionally ending in `/*`
 * for every path below it. Requests are routed on normalised paths, so an entry in another spelling could
 * never match.
 */
const allowEntry = Type.String({
  pattern: "^(/[A-Za-z0-9\\-._~!$&'()+,;=:@]+)+(/\\*)?$",
  not: { anyOf: [{ pattern: '/\\.\\.?(/|$)' }, { enum: [...ROUTED_PATHS] }] },
})

/**
 * Paths beyond vLLM's read-only routes that kvgate forwards without admission (authenticated like every
 * route). Everything not routed and not listed here is a 404; vLLM's admin routes are never forwarded unless
 * listed (start-up warns when one is). A path kvgate routes itself cannot be listed.
 */
export const passthroughSection = Type.Object(
  { allow: Type.Array(allowEntry, { uniqueItems: true, default: [] }) },
  { additionalProperties: false, default: {} },
)
