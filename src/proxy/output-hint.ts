import type { IncomingHttpHeaders } from 'node:http'
import { errors } from '../errors/index.js'
import type { OutputHintResult } from '../telemetry/index.js'

export interface OutputHint {
  /** Output tokens to reserve per sequence, bounded by the request's max_tokens. */
  readonly tokens: number
}

/** A hint is a whole number of tokens; beyond this it is a mistake, not a plan. */
const MAX_HINT_TOKENS = 10_000_000

/**
 * The client's own output length (`admission.outputHintHeader`, `x-kvgate-output-tokens` by default): a
 * batch job that knows its answers' lengths, or an external predictor in front of kvgate. Read only from a
 * user the operator trusts (`trustOutputHint`); from anyone else it is ignored (undefined, `ignored_untrusted`),
 * since a client that could shrink its own reservation could take KV from everyone. A trusted client's
 * malformed hint is refused (400 naming the header): its integration is broken and should hear so, rather
 * than be predicted silently. The hint is per sequence, like `max_tokens`, and capped by it.
 */
export function readOutputHint(
  headers: IncomingHttpHeaders,
  headerName: string,
  trusted: boolean,
  maxTokens: number | undefined,
): { hint?: OutputHint; result?: OutputHintResult } {
  const raw = headers[headerName]
  if (raw === undefined) return {}
  if (!trusted) return { result: 'ignored_untrusted' }
  const text = (Array.isArray(raw) ? raw[0] : raw)?.trim() ?? ''
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN
  if (!(value <= MAX_HINT_TOKENS)) {
    throw errors.invalidRequest(
      [`The ${headerName} header must be a whole number of output tokens (0 to ${MAX_HINT_TOKENS})`],
      { param: headerName },
    )
  }
  return { hint: { tokens: maxTokens === undefined ? value : Math.min(value, maxTokens) }, result: 'used' }
}
