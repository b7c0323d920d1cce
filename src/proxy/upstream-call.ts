import type { IncomingHttpHeaders } from 'node:http'
import { request as undiciRequest, type Dispatcher } from 'undici'
import type { KvgateConfig } from '../config/index.js'
import { createWatchdog, type Clock } from '../core/index.js'
import { errors, KvgateError } from '../errors/index.js'
import { API_KEY_HEADERS } from '../identity/index.js'

// Client headers that never go upstream: hop-by-hop, recomputed, or kvgate's own.
const DROPPED_HEADERS = new Set([
  'host',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'upgrade',
  'proxy-authorization',
  'te',
  'trailer',
  'expect',
  // The gateway parses the stream; a compressed one would hide the tokens.
  'accept-encoding',
])

/**
 * The client's headers as they go upstream: without hop-by-hop ones (and those `connection` names), kvgate's
 * own (the identity, deadline and output-hint headers), and the key unless `identity.forwardApiKey`. The body is JSON
 * kvgate wrote, unless `contentType` says what the client sent (an allow-listed pass-through).
 */
export function upstreamHeaders(
  headers: IncomingHttpHeaders,
  config: KvgateConfig,
  contentType = 'application/json',
): Record<string, string> {
  const out: Record<string, string> = {}
  const dropped = new Set([config.identity.header, config.admission.deadlineHeader, config.admission.outputHintHeader])
  if (!config.identity.forwardApiKey) for (const name of API_KEY_HEADERS) dropped.add(name)
  const connection = headers.connection
  if (typeof connection === 'string') for (const name of connection.split(',')) dropped.add(name.trim().toLowerCase())
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || DROPPED_HEADERS.has(name) || dropped.has(name) || name.startsWith('x-kvgate-')) continue
    out[name] = Array.isArray(value) ? value.join(', ') : value
  }
  out['content-type'] = contentType
  return out
}

export interface UpstreamCallOptions {
  readonly url: string
  readonly dispatcher: Dispatcher
  readonly clock: Clock
  readonly headers: Record<string, string>
  /** POST by default (a generating route); a pass-through says its own. */
  readonly method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  /** None for a GET. */
  readonly body?: string | Buffer
  /** The request's own abort (client gone, shutdown). */
  readonly signal: AbortSignal
  /** Longest wait for the response headers. */
  readonly headersTimeoutMs: number
  /** Longest silence between two pieces of the body once the headers came. */
  readonly idleTimeoutMs: number
}

/**
 * One call to a backend (a POST of a generating route, or a pass-through), its two limits kept on the injected clock: no headers within `headersTimeoutMs`, or
 * no body data for `idleTimeoutMs`, aborts it with `upstream_error` (so a wedged backend releases the
 * request's KV instead of holding it). undici's own timers are off for it (the Agent sets 0): they run on the
 * real clock, which a stepped clock cannot drive and a loaded machine fires at random.
 */
export class UpstreamCall {
  readonly response: Dispatcher.ResponseData
  readonly #watchdog: ReturnType<typeof createWatchdog>
  readonly #idleTimeoutMs: number

  private constructor(response: Dispatcher.ResponseData, watchdog: ReturnType<typeof createWatchdog>, idleMs: number) {
    this.response = response
    this.#watchdog = watchdog
    this.#idleTimeoutMs = idleMs
  }

  static async open(options: UpstreamCallOptions): Promise<UpstreamCall> {
    const timeout = new AbortController()
    let limitMs = options.headersTimeoutMs
    let what = 'response headers'
    const watchdog = createWatchdog(options.clock, limitMs, () =>
      timeout.abort(errors.upstreamError([`no ${what} for ${limitMs} ms`])),
    )
    try {
      const response = await undiciRequest(options.url, {
        method: options.method ?? 'POST',
        dispatcher: options.dispatcher,
        headers: options.headers,
        body: options.body ?? null,
        signal: AbortSignal.any([options.signal, timeout.signal]),
      })
      limitMs = options.idleTimeoutMs
      what = 'response data'
      watchdog.reset(limitMs)
      return new UpstreamCall(response, watchdog, limitMs)
    } catch (err) {
      watchdog.stop()
      throw asUpstreamError(err)
    }
  }

  get statusCode(): number {
    return this.response.statusCode
  }

  get contentType(): string {
    return String(this.response.headers['content-type'] ?? 'application/json')
  }

  /** The body as it arrives; every piece keeps the idle limit at bay. Throws `upstream_error` when it breaks. */
  async *chunks(): AsyncGenerator<Uint8Array, void, undefined> {
    try {
      for await (const chunk of this.response.body) {
        this.#watchdog.touch()
        yield chunk as Uint8Array
      }
    } catch (err) {
      throw asUpstreamError(err)
    } finally {
      this.#watchdog.stop()
    }
  }

  /**
   * The whole body as text (a JSON answer or error), under the same idle limit; past `maxBytes` the rest is
   * not read (an error body is read to be re-told, and a backend that floods it must not fill kvgate's heap).
   */
  async text(maxBytes = Infinity): Promise<string> {
    const decoder = new TextDecoder()
    let text = ''
    let bytes = 0
    for await (const chunk of this.chunks()) {
      bytes += chunk.length
      text += decoder.decode(chunk, { stream: true })
      if (bytes > maxBytes) {
        this.destroy()
        break
      }
    }
    return text + decoder.decode()
  }

  /**
   * Wait for `wait` (a slow client draining) without the backend's silence meanwhile counting against it: it
   * is not reading that holds the stream, not the backend.
   */
  async whilePaused<T>(wait: Promise<T>): Promise<T> {
    this.#watchdog.pause()
    try {
      return await wait
    } finally {
      this.#watchdog.resume()
    }
  }

  /** Stop reading (the client left): the connection to the backend is closed, which cancels its work. */
  destroy(): void {
    this.#watchdog.stop()
    this.response.body.destroy()
  }

  get idleTimeoutMs(): number {
    return this.#idleTimeoutMs
  }
}

/**
 * What undici threw, or the abort reason it passed on, as `upstream_error` with the cause kept: a limit's own
 * error as it is, anything else (the client leaving, shutdown giving up on the stream) wrapped.
 */
function asUpstreamError(err: unknown): KvgateError {
  if (err instanceof KvgateError && err.code === errors.upstreamError.code) return err
  return errors.upstreamError([err instanceof Error ? err.message : String(err)], { cause: err })
}
