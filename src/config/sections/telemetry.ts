import { Type } from 'typebox'

export const DEFAULT_MAX_USER_LABELS = 100 // configured users that get their own metric label
export const DEFAULT_LOG_LEVEL = 'info'
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

export const telemetrySection = Type.Object(
  {
    maxUserLabels: Type.Integer({ minimum: 0, default: DEFAULT_MAX_USER_LABELS }),
    logLevel: Type.Enum(LOG_LEVELS, { default: DEFAULT_LOG_LEVEL }),
  },
  { additionalProperties: false, default: {} },
)
