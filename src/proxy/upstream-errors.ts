import { errors, KvgateError, type RequestOutcome } from '../errors/index.js'

/**
 * An upstream's error answer, re-told in OpenAI's shape. The upstream is semi-trusted: its error bodies are
 * read, never passed on as they came. vLLM ≥ 0.10.1 answers `{error: {message, type, param, code}}` (its
 * `code` is the HTTP status, a number), older releases a flat `{object: "error", message, …}`, FastAPI
 * `{detail: …}`, and a proxy or load balancer in front of it an HTML page. kvgate keeps the status, the
 * message and `param` (clients match on status and `param`, e.g. `input_tokens` for a context that is too
 * long), bounds their lengths, and makes `code` a string; a body it cannot read becomes a message of its own.
 */
const MAX_MESSAGE_LENGTH = 1_000 // characters of an upstream message passed on
const MAX_FIELD_LENGTH = 128 // characters of an upstream type, param or code

/** The code kvgate gives an upstream error whose own code is missing or not a string. */
function codeForStatus(status: number): string {
  if (status === 404) return errors.notFound.code
  if (status < 500) return errors.invalidRequest.code
  return errors.upstreamError.code
}

function typeForStatus(status: number): string {
  return status < 500 ? 'invalid_request_error' : 'server_error'
}

const field = (value: unknown): string | undefined =>
  typeof value === 'string' && value.length > 0 ? value.slice(0, MAX_FIELD_LENGTH) : undefined

interface UpstreamErrorFields {
  message?: unknown
  type?: unknown
  param?: unknown
  code?: unknown
}

/** The error object inside whatever JSON the upstream sent, if it looks like one. */
function errorFields(body: unknown): UpstreamErrorFields | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined
  const record = body as Record<string, unknown>
  const nested = record['error']
  if (typeof nested === 'object' && nested !== null && !Array.isArray(nested)) return nested as UpstreamErrorFields
  if (typeof nested === 'string') return { message: nested }
  if (typeof record['message'] === 'string') return record as UpstreamErrorFields
  // FastAPI: `{"detail": "Not Found"}`, or a list of validation problems.
  if (typeof record['detail'] === 'string') return { message: record['detail'] }
  return undefined
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/**
 * The error to answer for an upstream's non-2xx `status` with body `text`: its own fields when it sent an
 * error object, else a message saying what came back (never the body itself).
 */
export function fromUpstreamError(
  status: number,
  text: string,
  contentType: string,
  mask: (text: string) => string = (t) => t,
): KvgateError {
  const outcome: RequestOutcome = status < 500 ? 'invalid_request' : 'upstream_error'
  const fields = errorFields(parse(text))
  const message =
    typeof fields?.message === 'string' && fields.message.length > 0
      ? mask(fields.message.slice(0, MAX_MESSAGE_LENGTH))
      : `The upstream server answered ${status} with ${describeBody(text, contentType)}.`
  const code = field(fields?.code) ?? codeForStatus(status)
  const type = field(fields?.type) ?? typeForStatus(status)
  const param = field(fields?.param)
  // The message only: type, code and param are the upstream's own vocabulary, not an echo of the request.
  return new KvgateError(code, status, type, message, param === undefined ? {} : { param }, outcome)
}

function describeBody(text: string, contentType: string): string {
  if (text.length === 0) return 'an empty body'
  const kind = contentType.split(';')[0]?.trim() || 'unknown'
  return `a ${kind} body that is not an error object`
}
