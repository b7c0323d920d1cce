import type { Admission } from '../admission/index.js'
import { errors } from '../errors/index.js'
import { usageOf, type GeneratingRoute } from './generating-route.js'
import type { Ending, RequestLifecycle } from './request-lifecycle.js'
import type { UpstreamCall } from './upstream-call.js'
import { fromUpstreamError } from './upstream-errors.js'

// An error body is read only to be re-told; a backend flooding one must not fill kvgate's heap.
const MAX_ERROR_BODY_BYTES = 64 * 1024 // 64 KiB

/**
 * The JSON path: a whole answer (a non-streaming completion, or vLLM's error before any stream) read under
 * the idle limit, counted, and sent on with kvgate's headers. An error is re-told in OpenAI's shape with the
 * upstream's status (upstream-errors.ts), never passed on as it came (an HTML page from a proxy, FastAPI's
 * `{"detail": …}`); a 200 that is not JSON is a 502. Throws `upstream_error` when the body breaks; the
 * lifecycle answers it.
 */
export async function forwardJson(
  lifecycle: RequestLifecycle,
  route: GeneratingRoute,
  admission: Admission,
  upstream: UpstreamCall,
  headers: Record<string, string>,
  /** What an upstream's error message may say: no configured key (an upstream echoes model names). */
  mask: (text: string) => string = (text) => text,
): Promise<Ending> {
  const status = upstream.statusCode
  const ok = status >= 200 && status < 300
  const text = await upstream.text(ok ? Infinity : MAX_ERROR_BODY_BYTES)
  if (lifecycle.clientGone) return { outcome: 'cancelled_streaming', status: 499 }
  if (!ok) {
    // vLLM refusing the request itself (context too long, bad parameter) is the client's mistake (a 4xx).
    const error = fromUpstreamError(status, text, upstream.contentType, mask)
    await lifecycle.reply.code(status).headers(headers).send(error.toBody())
    return { outcome: error.outcome, status, errorCode: error.code }
  }
  let answer: unknown
  try {
    answer = JSON.parse(text)
  } catch {
    throw errors.upstreamError([`the backend answered ${status} with a body that is not JSON`])
  }
  const count = (route.countOutput ?? usageOf)(answer)
  const model = (answer as { model?: unknown } | null)?.model
  if (typeof model === 'string') lifecycle.responseModel = model
  if (count.completionTokens !== undefined) lifecycle.completionTokens = count.completionTokens
  if (count.promptTokens !== undefined) lifecycle.promptTokensServed = count.promptTokens
  lifecycle.finishReason = count.finishReason
  admission.recordTokens(lifecycle.completionTokens)
  await lifecycle.reply.code(status).headers(headers).type(upstream.contentType).send(text)
  return { outcome: 'completed', status }
}
