import { Type } from 'typebox'

export const DEFAULT_HOST = '0.0.0.0'
export const DEFAULT_PORT = 8080
export const DEFAULT_SHUTDOWN_GRACE_MS = 30_000 // 30 seconds for streams to finish after SIGTERM

/** The gateway's listener. */
export const serverSection = Type.Object(
  {
    host: Type.String({ minLength: 1, default: DEFAULT_HOST }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: DEFAULT_PORT }),
    shutdownGraceMs: Type.Integer({ minimum: 0, default: DEFAULT_SHUTDOWN_GRACE_MS }),
  },
  { additionalProperties: false, default: {} },
)
