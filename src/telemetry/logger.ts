import { pino, type Logger } from 'pino'
import type { LogLevel } from '../config/index.js'

/**
 * The gateway's pino logger: JSON lines on stdout, one per finished request plus lifecycle events. `false`
 * gives a silent logger so callers never need to test for one.
 */
export function createLogger(
  options: { level?: LogLevel; logger?: Logger | false; redact?: readonly string[] } = {},
): Logger {
  if (options.logger === false) return pino({ enabled: false })
  if (options.logger !== undefined) return options.logger
  return pino({
    name: 'kvgate',
    level: options.level ?? 'info',
    ...(options.redact === undefined ? {} : { redact: { paths: [...options.redact], censor: '[redacted]' } }),
  })
}
