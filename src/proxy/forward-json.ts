import type { Admission } from '../admission/index.js'
import { usageOf, type GeneratingRoute } from './generating-route.js'
import type { Ending, RequestLifecycle } from './request-lifecycle.js'
import type { UpstreamCall } from './upstream-call.js'

/**
 * The JSON path: a whole answer (a non-streaming completion, or vLLM's error in its own shape before any
 * stream) read under the idle limit, counted, and sent on with kvgate's headers. Throws `upstream_error` when
 * the body breaks; the lifecycle answers it.
 */
export async function forwardJson(
  lifecycle: RequestLifecycle,
  route: GeneratingRoute,
  admission: Admission,
  upstream: UpstreamCall,
  headers: Record<string, string>,
): Promise<Ending> {
  const text = await upstream.text()
  if (lifecycle.clientGone) return { outcome: 'cancelled_streaming', status: 499 }
  const status = upstream.statusCode
  if (status === 200) {
    let answer: unknown
    try {
      answer = JSON.parse(text)
    } catch {
      // Not JSON: passed on as is; the completion length stays unknown (0).
    }
    const count = (route.countOutput ?? usageOf)(answer)
    if (count.completionTokens !== undefined) lifecycle.completionTokens = count.completionTokens
    if (count.promptTokens !== undefined) lifecycle.promptTokensServed = count.promptTokens
    lifecycle.finishReason = count.finishReason
    admission.recordTokens(lifecycle.completionTokens)
  }
  await lifecycle.reply.code(status).headers(headers).type(upstream.contentType).send(text)
  if (status === 200) return { outcome: 'completed', status }
  // vLLM refusing the request itself (context too long, bad parameter) is the client's mistake.
  return { outcome: status < 500 ? 'invalid_request' : 'upstream_error', status }
}
