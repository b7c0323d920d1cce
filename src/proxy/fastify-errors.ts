import { errors, KvgateError } from '../errors/index.js'

/** What Fastify and its body parser throw: a code of their own and, for the client's mistakes, a 4xx. */
interface FastifyLikeError {
  readonly code?: string
  readonly statusCode?: number
  readonly message?: string
}

/**
 * Fastify's own refusals (bad JSON, wrong content type, body too large) in OpenAI's error shape: bad JSON is
 * the registry's `invalid_json`; another 4xx keeps Fastify's status and its code, lowercased (`fst_err_…`),
 * as the public code; anything else is a bug (500 `internal_error`).
 */
export function fromFastifyError(err: unknown): KvgateError {
  if (err instanceof KvgateError) return err
  const e = (typeof err === 'object' && err !== null ? err : {}) as FastifyLikeError
  const message = e.message ?? String(err)
  if (e.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError) {
    return errors.invalidJson([message], { cause: err })
  }
  if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500) {
    // Fastify's code is as stable as ours; declaring each one in the registry would only rename it.
    const code = (e.code ?? 'invalid_request').toLowerCase()
    return new KvgateError(code, e.statusCode, 'invalid_request_error', message, { cause: err }, 'invalid_request')
  }
  return errors.internal([message], { cause: err })
}
