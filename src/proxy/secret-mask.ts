import type { KvgateConfig } from '../config/index.js'
import { REDACTED } from '../core/index.js'

// A "secret" this short is no credential (keys are at least 8 characters, the admin token 16).
const MIN_SECRET_LENGTH = 8

const masks = new WeakMap<KvgateConfig, RegExp | null>()

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** One expression matching every configured credential (API keys, the admin token), built once per config. */
function maskOf(config: KvgateConfig): RegExp | null {
  let mask = masks.get(config)
  if (mask !== undefined) return mask
  const secrets = [...config.identity.apiKeys.map((entry) => entry.key), config.admin.token]
    .filter((s): s is string => s !== null && s.length >= MIN_SECRET_LENGTH)
    // Longest first, so a key that contains another is masked whole.
    .sort((a, b) => b.length - a.length)
  mask = secrets.length === 0 ? null : new RegExp(secrets.map(escapeRegExp).join('|'), 'g')
  masks.set(config, mask)
  return mask
}

/**
 * `text` with every configured credential replaced by `[redacted]`: for what kvgate writes from a client's
 * or an upstream's words (a path, a model name, an upstream's error message), so that a key a client put in
 * the wrong place reaches neither a log line nor an error message.
 */
export function maskSecrets(text: string, config: KvgateConfig): string {
  const mask = maskOf(config)
  return mask === null ? text : text.replace(mask, REDACTED)
}
