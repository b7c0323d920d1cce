import { format } from 'node:util'
import type { RequestOutcome } from './outcomes.js'

export type { RequestOutcome } from './outcomes.js'
export { REQUEST_OUTCOMES } from './outcomes.js'

/**
 * kvgate's one error registry. Every error a client or operator can see is declared here with a stable
 * `code` (public API: it is the OpenAI error body's `code` and, for rejections, the reason header), an HTTP
 * status and an OpenAI error `type`. Request code never throws a bare `Error`; it throws one of these, and a
 * wrapped error keeps its `cause`.
 */
export interface OpenAIErrorBody {
  error: {
    message: string
    type: string
    param: string | null
    code: string
  }
}

export interface KvgateErrorOptions {
  cause?: unknown
  /** The request field the error is about (OpenAI's `param`). */
  param?: string
  /** Extra response headers, e.g. `retry-after` on a 429. */
  headers?: Readonly<Record<string, string>>
  /** The outcome a request ends with, when it differs from the one the registry declares for this error. */
  outcome?: RequestOutcome
  /** The OpenAI error `type`, when it differs from the registry's (a quota 429 on requests, not tokens). */
  type?: string
  /**
   * Capture a stack trace (default true). Admission passes false for its rejections (429/499/503): they are
   * outcomes, not bugs, and a mass deadline expiry spent ~25% of its time capturing stacks nobody reads
   * (docs/benchmarks.md, finding 4).
   */
  captureStack?: boolean
}

export class KvgateError extends Error {
  override readonly name = 'KvgateError'
  /** kvgate's own code: the registry's name for it, in logs, `x-kvgate-reject-reason` and tests. */
  readonly code: string
  /** The body's `code`: kvgate's, except where OpenAI's convention names it (every 429: `rate_limit_exceeded`). */
  readonly bodyCode: string
  readonly statusCode: number
  readonly type: string
  readonly param: string | null
  readonly headers: Readonly<Record<string, string>>
  /** How a request that ends with this error is counted (`kvgate_requests_total{outcome}`). */
  readonly outcome: RequestOutcome

  constructor(
    code: string,
    statusCode: number,
    type: string,
    message: string,
    options: KvgateErrorOptions = {},
    outcome: RequestOutcome = 'internal_error',
    declared: ErrorDeclaration = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.bodyCode = declared.bodyCode ?? code
    this.statusCode = statusCode
    this.type = options.type ?? type
    this.param = options.param ?? null
    this.headers = { ...declared.headers, ...options.headers }
    this.outcome = options.outcome ?? outcome
  }

  /** The body OpenAI (and vLLM ≥ 0.10.1) sends for an error. */
  toBody(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.bodyCode } }
  }
}

/** What an error declares beyond its code, status, type and message. */
export interface ErrorDeclaration {
  /** The body's `code` when OpenAI's convention differs from kvgate's code (the code is then in the message). */
  readonly bodyCode?: string
  /** Headers every instance carries unless the throw site gives its own (a 503's `retry-after`). */
  readonly headers?: Readonly<Record<string, string>>
}

export interface KvgateErrorFactory {
  (args?: readonly unknown[], options?: KvgateErrorOptions): KvgateError
  readonly code: string
  readonly statusCode: number
  readonly type: string
  readonly outcome: RequestOutcome
}

/**
 * Declare an error: `message` is a `util.format` template filled from the `args` given at the throw site;
 * `outcome` is how a request that ends with it is counted (a client error is `invalid_request`, a bug
 * `internal_error`).
 */
export function createError(
  code: string,
  statusCode: number,
  type: string,
  message: string,
  outcome: RequestOutcome = statusCode < 500 ? 'invalid_request' : 'internal_error',
  declared: ErrorDeclaration = {},
): KvgateErrorFactory {
  const factory = (args: readonly unknown[] = [], options: KvgateErrorOptions = {}): KvgateError => {
    const formatted = format(message, ...args)
    // The body's code is OpenAI's: kvgate's own reason stays readable in the message.
    const text = declared.bodyCode === undefined ? formatted : `${formatted} (kvgate reason: ${code})`
    if (options.captureStack !== false) {
      return new KvgateError(code, statusCode, type, text, options, outcome, declared)
    }
    // V8 reads the limit when the Error is constructed; restore it even if construction throws.
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    try {
      return new KvgateError(code, statusCode, type, text, options, outcome, declared)
    } finally {
      Error.stackTraceLimit = limit
    }
  }
  return Object.assign(factory, { code, statusCode, type, outcome })
}

// OpenAI's error `type` values that kvgate uses. A 429's type says which limit was hit, `tokens` or
// `requests`, and its body `code` is always `rate_limit_exceeded` (the SDKs' RateLimitError).
const INVALID_REQUEST = 'invalid_request_error'
const AUTHENTICATION = 'authentication_error'
export const RATE_LIMIT_TOKENS = 'tokens'
export const RATE_LIMIT_REQUESTS = 'requests'
const SERVER = 'server_error'
const UNAVAILABLE = 'service_unavailable'
const RATE_LIMITED: ErrorDeclaration = { bodyCode: 'rate_limit_exceeded' }

// A 503 kvgate makes says when to come back: the OpenAI SDKs honour retry-after(-ms), and a backend that
// comes back is polled usable within a second or two.
const UNAVAILABLE_RETRY_AFTER_MS = 2_000 // 2 seconds
const RETRY_LATER: ErrorDeclaration = {
  headers: {
    'retry-after': String(UNAVAILABLE_RETRY_AFTER_MS / 1_000),
    'retry-after-ms': String(UNAVAILABLE_RETRY_AFTER_MS),
  },
}

/**
 * The registry. Add new errors here, never inline. Codes are snake_case like OpenAI's own
 * (`rate_limit_exceeded`, `invalid_api_key`), so SDKs and dashboards can match on them.
 */
export const errors = Object.freeze({
  // Client input
  invalidRequest: createError('invalid_request', 400, INVALID_REQUEST, '%s'),
  invalidJson: createError('invalid_json', 400, INVALID_REQUEST, 'The request body is not valid JSON: %s'),
  // vLLM's own answers, so a client of vLLM sees no difference: its message and `param`, its exception's name
  // as `type` (vllm/entrypoints/openai/serving_engine.py); kvgate's stable code.
  modelNotFound: createError('model_not_found', 404, 'NotFoundError', 'The model `%s` does not exist.'),
  promptExceedsContext: createError(
    'context_length_exceeded',
    400,
    'BadRequestError',
    "This model's maximum context length is %d tokens. However, your request has %d input tokens. Please reduce the length of the input messages.",
  ),
  maxTokensExceedContext: createError(
    'context_length_exceeded',
    400,
    'BadRequestError',
    "'max_tokens' or 'max_completion_tokens' is too large: %d. This model's maximum context length is %d tokens and your request has %d input tokens (%d > %d - %d).",
  ),
  notFound: createError('not_found', 404, INVALID_REQUEST, '%s', 'not_found'),
  /** Never names the key: OpenAI shows a masked one, kvgate none (it would reach logs and screenshots). */
  invalidApiKey: createError('invalid_api_key', 401, AUTHENTICATION, 'Incorrect API key provided.', 'unauthenticated'),
  missingApiKey: createError(
    'missing_api_key',
    401,
    AUTHENTICATION,
    'You did not provide an API key. Pass it as "Authorization: Bearer KEY".',
    'unauthenticated',
  ),
  requestTimeout: createError('request_timeout', 408, INVALID_REQUEST, 'The request body did not arrive within %d ms.'),
  payloadTooLarge: createError('payload_too_large', 413, INVALID_REQUEST, 'The request body exceeds %d bytes.'),
  jsonTooComplex: createError('json_too_complex', 400, INVALID_REQUEST, 'The request body is refused: %s.'),
  /** Node's own refusals of a request it could not parse (a bad head, a head too large), in OpenAI's shape. */
  badHttpRequest: createError('bad_http_request', 400, INVALID_REQUEST, 'The HTTP request could not be parsed.'),
  headersTooLarge: createError(
    'request_header_fields_too_large',
    431,
    INVALID_REQUEST,
    'The request headers are too large.',
  ),

  // Admission rejections (429: capacity exists but is contended)
  queueFull: createError(
    'queue_full',
    429,
    RATE_LIMIT_REQUESTS,
    'The admission queue is full (%d waiting). Please try again in %s.',
    'rejected_queue_full',
    RATE_LIMITED,
  ),
  deadlineExceeded: createError(
    'queue_deadline_exceeded',
    429,
    RATE_LIMIT_TOKENS,
    'The request waited %s for KV-cache capacity without being admitted. Please try again in %s.',
    'rejected_deadline',
    RATE_LIMITED,
  ),
  predictedWaitTooLong: createError(
    'predicted_wait_exceeds_deadline',
    429,
    RATE_LIMIT_TOKENS,
    'The predicted wait of %s exceeds the deadline of %s. Please try again in %s.',
    'rejected_early',
    RATE_LIMITED,
  ),
  /** `type` is `tokens` unless the requests-per-minute quota is the one exhausted (the throw site says). */
  quotaExceeded: createError(
    'quota_exceeded',
    429,
    RATE_LIMIT_TOKENS,
    'Rate limit reached for user %s: %s. Please try again in %s.',
    'rejected_quota',
    RATE_LIMITED,
  ),

  // Admission: a request the gateway can never serve, and a client that left while its request waited
  requestExceedsKvCapacity: createError(
    'request_exceeds_kv_capacity',
    400,
    INVALID_REQUEST,
    'The prompt needs %d tokens of KV cache but the largest backend can hold at most %d. Please reduce the length of the messages.',
  ),
  requestCancelled: createError(
    'request_cancelled',
    499,
    INVALID_REQUEST,
    'The client closed the request while it %s.',
    'cancelled_queued',
  ),

  // Upstream and gateway state
  noBackendAvailable: createError(
    'no_backend_available',
    503,
    UNAVAILABLE,
    'No backend can serve requests: %s',
    'rejected_unavailable',
    RETRY_LATER,
  ),
  /** Refused at the gate or in the queue; a stream it cuts after the grace period ends `cancelled_shutdown`. */
  shuttingDown: createError(
    'shutting_down',
    503,
    UNAVAILABLE,
    'kvgate is shutting down.',
    'rejected_unavailable',
    RETRY_LATER,
  ),
  upstreamError: createError('upstream_error', 502, SERVER, 'The upstream server failed: %s', 'upstream_error'),
  internal: createError('internal_error', 500, SERVER, 'Internal error: %s'),

  // Configuration (thrown at start-up and reload, not to clients)
  invalidConfig: createError('invalid_config', 500, SERVER, 'Invalid configuration: %s'),
  /** A policy's own options (`policy.options`), checked by the policy; the message names the field. */
  invalidPolicyOptions: createError('invalid_policy_options', 500, SERVER, '%s'),
  /** `POST /admin/reload` (or `kvgate reload`) with a file that does not validate: the old config stays. */
  reloadRefused: createError('reload_refused', 422, INVALID_REQUEST, 'The config was not reloaded: %s'),

  // Bench inputs (thrown by `kvgate bench` while reading a workload, not to clients)
  invalidTrace: createError('invalid_trace', 400, INVALID_REQUEST, 'Invalid trace %s, line %d: %s'),
  invalidWorkload: createError('invalid_workload', 400, INVALID_REQUEST, 'Invalid workload %s: %s'),
})

export type ErrorName = keyof typeof errors

/** Turn anything thrown into a KvgateError, keeping the original as `cause`. */
export function toKvgateError(err: unknown): KvgateError {
  if (err instanceof KvgateError) return err
  const message = err instanceof Error ? err.message : String(err)
  return errors.internal([message], { cause: err })
}
