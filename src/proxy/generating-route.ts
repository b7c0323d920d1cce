import type { TSchema } from 'typebox'
import type { Predictor } from '../predictor/index.js'
import type { TokenCounter } from '../tokens/index.js'

/** What admission needs to know of a request to a generating route, read from its body. */
export interface GenerationRequest {
  /** The model the client named; `DEFAULT_MODEL_KEY` when it left the choice to the server. */
  readonly model: string
  readonly stream: boolean
  /** The client asked for the streamed usage chunk (`stream_options` present, `include_usage` not false). */
  readonly clientWantsUsage: boolean
  /** The most output tokens per sequence the client allows, undefined when unbounded. */
  readonly maxTokens: number | undefined
  /** Sequences the backend will generate (`n` × prompts of a batched call). */
  readonly sequences: number
  /** Prompt tokens across all sequences, estimated with the shared token counter. */
  readonly promptTokens: number
  /** Tokens of the longest single prompt (what vLLM checks against the context); by default promptTokens / sequences. */
  readonly longestPromptTokens?: number
  /** The prompt counts are exact (token ids given, or counted by the backend's `/tokenize`), not estimated. */
  readonly promptTokensExact?: boolean
  readonly body: Readonly<Record<string, unknown>>
}

/** Token counts a backend reported for a whole (non-streamed) answer. */
export interface OutputCount {
  readonly completionTokens?: number
  readonly promptTokens?: number
  /** `length` when any sequence was cut by `max_tokens` (a censored length), else the first reason given. */
  readonly finishReason?: string
}

/**
 * A vLLM route whose requests hold KV and so go through identity and admission. The request lifecycle
 * (request-lifecycle.ts) and the forwarding (forward-json.ts, forward-sse.ts) are shared; a route only says
 * how to read its body into a need and how to count what came back: completion-routes.ts (chat and
 * completions), responses-route.ts (`/v1/responses`, `/invocations`), pooling-routes.ts (`/v1/embeddings`,
 * `/pooling`, `/classify`, `/score`, `/rerank`). GENERATING_ROUTES lists them all; a test checks they cover
 * every path of `VLLM_GENERATING_PATHS` (src/core).
 */
export interface GeneratingRoute {
  /** The path as vLLM serves it; every spelling that normalises to it reaches it (request-target.ts). */
  readonly path: string
  /** Other paths vLLM serves the same handler on (`/v1/score` for `/score`). */
  readonly aliases?: readonly string[]
  /**
   * The body's shape (request-schemas.ts), validated by Fastify before the handler: a mismatch is a 400
   * naming the field, before the token counter, the queue or a backend sees the body.
   */
  readonly bodySchema?: TSchema
  /** Read and check the body: throws `invalid_request` (400, `param` naming the field) for what vLLM would refuse. */
  parse(body: unknown, tokens: TokenCounter): GenerationRequest
  /** The body sent upstream (a streaming request always asks for usage, so the gateway learns the exact count). */
  upstreamBody(request: GenerationRequest): Record<string, unknown>
  /**
   * A `POST /tokenize` body that counts this prompt with the backend's tokenizer (`exactPromptTokens`), or
   * undefined when one call cannot (token ids count themselves; batched prompts would need one call each).
   */
  tokenizeBody?(request: GenerationRequest): Record<string, unknown> | undefined
  /**
   * The prompt's token ids as the gateway's counter reads them (the rendered chat, a prompt's text or its
   * ids), for prefix-aware routing's block hashes; asked for only when a router hashes. A batched call gives
   * its first prompt's. Without it the request has no prefix to match.
   */
  promptTokenIds?(request: GenerationRequest, tokens: TokenCounter): readonly number[]
  /**
   * Output tokens to reserve per sequence. Undefined (or no method): the predictor's quantile for the model,
   * capped by `maxTokens`, and the predictor learns from the answer. A route whose answers it cannot learn
   * from returns its documented estimate instead (0 for the pooling routes, which generate nothing).
   */
  predictOutput?(request: GenerationRequest, predictor: Predictor): number | undefined
  /** Tokens of a whole JSON answer; by default OpenAI's `usage` object. */
  countOutput?(answer: unknown): OutputCount
}

/** OpenAI's `usage` of a JSON answer: what vLLM reports for chat, completions and the pooling routes. */
export function usageOf(answer: unknown): OutputCount {
  if (typeof answer !== 'object' || answer === null) return {}
  const { usage, choices } = answer as {
    usage?: { completion_tokens?: unknown; prompt_tokens?: unknown }
    choices?: unknown
  }
  const reasons = Array.isArray(choices)
    ? choices.map((c) => (c as { finish_reason?: unknown } | null)?.finish_reason)
    : []
  const finishReason = combinedFinishReason(reasons)
  return {
    ...(typeof usage?.completion_tokens === 'number' ? { completionTokens: usage.completion_tokens } : {}),
    ...(typeof usage?.prompt_tokens === 'number' ? { promptTokens: usage.prompt_tokens } : {}),
    ...(finishReason === undefined ? {} : { finishReason }),
  }
}

/** `length` if any sequence hit its limit (the predictor treats the answer as censored), else the first reason. */
export function combinedFinishReason(reasons: readonly unknown[]): string | undefined {
  let first: string | undefined
  for (const reason of reasons) {
    if (typeof reason !== 'string') continue
    if (reason === 'length') return reason
    first ??= reason
  }
  return first
}
