import { Type } from 'typebox'
import { nullable } from '../../core/index.js'

export const DEFAULT_ADMIN_HOST = '127.0.0.1' // loopback: reachable from the pod or host, not the network
export const DEFAULT_ADMIN_PORT = 9090

/**
 * The admin listener, apart from the public one: `/metrics`, `/debug/*` and every admin route live there,
 * never on the public port. Loopback by default; bound to another address (a pod IP for Prometheus) it can
 * require `Authorization: Bearer <token>` on every route but `/health`.
 */
export const adminSection = Type.Object(
  {
    host: Type.String({ minLength: 1, default: DEFAULT_ADMIN_HOST }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: DEFAULT_ADMIN_PORT }),
    /** null: no token (fine on loopback); else every admin request but `/health` must carry it. */
    token: nullable(Type.String({ minLength: 16, secret: true }), { default: null }),
  },
  { additionalProperties: false, default: {} },
)
