import type { ServerResponse } from 'node:http'
import type { Admission } from '../admission/index.js'
import type { Clock } from '../core/index.js'
import { errors, toKvgateError } from '../errors/index.js'
import type { GatewayMetrics } from '../telemetry/index.js'
import type { GenerationRequest } from './generating-route.js'
import { type Ending, type RequestLifecycle, sseEvent } from './request-lifecycle.js'
import { shutdownCut } from './in-flight.js'
import { createSseRelay } from './sse-relay.js'
import type { UpstreamCall } from './upstream-call.js'

/**
 * Resolve true on 'drain', on 'close' (a gone client never drains) or on abort; false when the client has
 * read nothing for `timeoutMs`. A client that stops reading must not hold the relay (and its reservation, and
 * a graceful shutdown's abort) for as long as it stalls.
 */
function drained(raw: ServerResponse, signal: AbortSignal, clock: Clock, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(true)
    const settle = (result: boolean): void => {
      raw.off('drain', done)
      raw.off('close', done)
      signal.removeEventListener('abort', done)
      clock.clearTimeout(timer)
      resolve(result)
    }
    const done = (): void => settle(true)
    const timer = clock.setTimeout(() => settle(false), timeoutMs)
    raw.on('drain', done)
    raw.on('close', done)
    signal.addEventListener('abort', done)
  })
}

export interface SseForwarding {
  readonly lifecycle: RequestLifecycle
  readonly request: GenerationRequest
  readonly admission: Admission
  readonly upstream: UpstreamCall
  readonly headers: Record<string, string>
  readonly clock: Clock
  readonly metrics: GatewayMetrics
}

/**
 * The SSE path: each upstream chunk is relayed as it comes (its complete events in one write, never
 * buffered whole), its tokens counted, the usage chunk stripped unless the client asked for it. A stream
 * that breaks after it started ends the way vLLM ends one: an error event, then `[DONE]`, on the 200.
 *
 * The raw response is taken over from Fastify (`reply.hijack()`): the relay writes each chunk itself and
 * waits on the socket's own 'drain' (with the stalled-client limit), which a Readable handed to
 * `reply.send()` would hide behind one more buffer. The route reports the exchange at the raw response's close
 * (Fastify's `onResponse` usually fires for a hijacked reply too, but not always).
 */
export async function forwardSse(forwarding: SseForwarding): Promise<Ending> {
  const { lifecycle, request, admission, upstream, clock } = forwarding
  const reply = lifecycle.reply
  reply.hijack()
  const raw = reply.raw
  raw.writeHead(200, {
    'content-type': upstream.contentType,
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    ...forwarding.headers,
  })
  const relay = createSseRelay({
    stripUsageChunk: !request.clientWantsUsage,
    write: (text) => {
      if (!lifecycle.clientGone) raw.write(text)
    },
    onFirstContent: () => {
      lifecycle.ttftMs = clock.now() - lifecycle.startMs
      forwarding.metrics.timeToFirstToken(lifecycle.userLabel, lifecycle.ttftMs / 1000)
      admission.firstToken()
    },
    onTokens: (tokens) => admission.recordTokens(tokens),
  })
  const signal = lifecycle.abort.signal
  let failure: unknown
  try {
    for await (const chunk of upstream.chunks()) {
      relay.push(chunk)
      if (raw.writableNeedDrain && !(await upstream.whilePaused(drained(raw, signal, clock, upstream.idleTimeoutMs)))) {
        // Read nothing for as long as a silent backend is given: treat it as gone so its KV is released.
        lifecycle.clientGone = true
        lifecycle.abort.abort(new Error('client stopped reading'))
        raw.destroy()
      }
      if (lifecycle.clientGone) break
    }
    relay.end()
  } catch (err) {
    failure = err
  }
  lifecycle.completionTokens = relay.usage?.completionTokens ?? relay.completionTokens
  lifecycle.promptTokensServed = relay.usage?.promptTokens
  lifecycle.finishReason = relay.finishReason
  lifecycle.responseModel = relay.model
  if (lifecycle.clientGone) {
    upstream.destroy()
    return { outcome: 'cancelled_streaming', status: 200 }
  }
  const cut = failure === undefined ? undefined : shutdownCut(signal)
  if (cut !== undefined) {
    // kvgate cut it (shutdown's grace period ran out), not the backend: its own outcome, its own error event.
    raw.end(`${sseEvent(cut.toBody())}data: [DONE]\n\n`)
    return { outcome: cut.outcome, status: 200, errorCode: cut.code }
  }
  if (failure !== undefined || !relay.sawDone) {
    // The stream broke after it started: vLLM's way is an error event, then [DONE], on the 200.
    // chunks() throws upstream_error already (a broken connection, a limit, shutdown giving up on it).
    const error =
      failure === undefined ? errors.upstreamError(['the stream ended without [DONE]']) : toKvgateError(failure)
    raw.end(`${sseEvent(error.toBody())}data: [DONE]\n\n`)
    return { outcome: 'upstream_error', status: 200, errorCode: error.code }
  }
  raw.end()
  if (relay.upstreamError !== undefined) return { outcome: 'upstream_error', status: 200, errorCode: 'upstream_error' }
  return { outcome: 'completed', status: 200 }
}
