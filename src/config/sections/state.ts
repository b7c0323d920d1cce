import { Type } from 'typebox'
import { greaterThan, nullable, when } from '../../core/index.js'

export const STATE_STORES = ['memory', 'redis'] as const
export const DEFAULT_STATE_STORE = 'memory'
export const DEFAULT_STATE_KEY_PREFIX = 'kvgate:'
export const DEFAULT_LEASE_MS = 5_000 // 5 seconds: a replica that stops renewing loses its reservations after this
export const DEFAULT_HEARTBEAT_MS = 1_000 // 1 second between two renewals of a replica's lease
export const DEFAULT_COMMAND_TIMEOUT_MS = 500 // 0.5 seconds: a store slower than this puts admission in degraded mode

/**
 * Where the ledger's reservations, the quota windows and the fairness counters live. `memory` is one
 * process's own state (the default, no extra process); `redis` shares them between gateway replicas and
 * `kvgate serve --workers N` through a Redis 7 or Valkey server, so admission, fairness and quotas hold across
 * them (docs/replicas.md).
 */
export const stateSection = Type.Object(
  {
    store: Type.Enum(STATE_STORES, { default: DEFAULT_STATE_STORE }),
    /** `redis://[user:password@]host:port[/db]` or `rediss://…`; may carry a password, so never printed. */
    url: nullable(Type.String({ minLength: 1, secret: true }), { default: null }),
    /** Every key kvgate writes starts with it: several kvgate fleets can share one Redis. */
    keyPrefix: Type.String({
      minLength: 1,
      maxLength: 64,
      pattern: '^[A-Za-z0-9:_.{}-]+$',
      default: DEFAULT_STATE_KEY_PREFIX,
    }),
    leaseMs: Type.Integer({ minimum: 100, default: DEFAULT_LEASE_MS }),
    heartbeatMs: Type.Integer({ minimum: 10, default: DEFAULT_HEARTBEAT_MS }),
    commandTimeoutMs: Type.Integer({ minimum: 1, default: DEFAULT_COMMAND_TIMEOUT_MS }),
    /**
     * The N of degraded mode (each replica admits against 1/N of each backend) until the store has said how
     * many replicas are live: set it to the replica count you run, so a replica that starts while Redis is
     * down cannot take a whole backend.
     */
    expectedReplicas: Type.Integer({ minimum: 1, default: 1 }),
    /** This replica's name in the shared state; null = `<hostname>-<pid>-<random>`, new at every start. */
    replicaId: nullable(Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9._:-]+$' }), {
      default: null,
    }),
  },
  {
    additionalProperties: false,
    default: {},
    crossField: [
      // Without a server there is nothing to share through.
      when({ store: 'redis' }, { url: { type: 'string' } }),
      // A lease renewed less often than it lasts would lapse between two renewals of a live replica.
      greaterThan('leaseMs', 'heartbeatMs'),
    ],
  },
)
