import type { Logger } from 'pino'
import type { KvgateConfig } from '../config/index.js'
import { allowListCovers, VLLM_ADMIN_PATHS } from '../core/index.js'

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/

/**
 * The settings that weaken a promise kvgate makes, said once at start-up (docs/operations.md, "Security",
 * lists them): each is a legitimate choice, and each is a line an operator should have seen.
 */
export function securityWarnings(config: KvgateConfig): string[] {
  const warnings: string[] = []
  const { identity, admin, passthrough } = config
  const keys = identity.apiKeys.length > 0
  const trusted = identity.trustHeader ?? !keys
  if (keys && trusted) {
    warnings.push(
      `identity.trustHeader is on with API keys configured: any client${identity.requireAuth ? ' holding a key' : ''} can name any user (and take their weight and quota) with the ${identity.header} header or the body's user`,
    )
  }
  if (keys && !identity.requireAuth) {
    warnings.push('identity.requireAuth is off: requests without a key are served, as the anonymous user')
  }
  for (const entry of passthrough.allow) {
    const admins = VLLM_ADMIN_PATHS.filter((path) => allowListCovers(entry, path))
    if (admins.length > 0) {
      warnings.push(`passthrough.allow entry ${entry} forwards vLLM admin routes to clients: ${admins.join(', ')}`)
    }
  }
  if (!LOOPBACK.test(admin.host) && admin.token === null) {
    warnings.push(
      `the admin listener (/metrics, /debug) binds ${admin.host} without admin.token: anyone who reaches port ${admin.port} reads user names and queue contents, and can make kvgate re-read its config (POST /admin/reload)`,
    )
  }
  return warnings
}

export function logSecurityWarnings(config: KvgateConfig, logger: Logger): void {
  for (const warning of securityWarnings(config)) logger.warn({ security: true }, warning)
}
