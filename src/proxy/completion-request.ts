import { errors } from '../errors/index.js'
import type { ChatMessage, TokenCounter } from '../tokens/index.js'
import type { GenerationRequest } from './generating-route.js'

export type CompletionKind = 'chat' | 'completion'

/** A validated `/v1/chat/completions` or `/v1/completions` body, with what admission needs of it. */
export interface CompletionRequest extends GenerationRequest {
  readonly kind: CompletionKind
  /** `max_completion_tokens ?? max_tokens` (completions default to vLLM's 16), undefined when unbounded. */
  readonly maxTokens: number | undefined
  /** Completions the backend will generate: `n` × the number of prompts in a batched completions call. */
  readonly sequences: number
}

/** The predictor's key for requests that name no model (vLLM then serves its only model). */
export const DEFAULT_MODEL_KEY = 'default'

// vLLM's default for /v1/completions when `max_tokens` is absent.
const COMPLETIONS_DEFAULT_MAX_TOKENS = 16
const MAX_SEQUENCES = 128 // `n` × prompts beyond this is refused rather than reserved

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function optionalPositiveInteger(body: Record<string, unknown>, field: string): number | undefined {
  const value = body[field]
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw errors.invalidRequest([`'${field}' must be a positive integer, got ${JSON.stringify(value)}`], {
      param: field,
    })
  }
  return value
}

function chatPromptTokens(body: Record<string, unknown>, tokens: TokenCounter): number {
  const messages = body['messages']
  if (!Array.isArray(messages) || messages.length === 0) {
    throw errors.invalidRequest(["'messages' is required and must be a non-empty array"], { param: 'messages' })
  }
  messages.forEach((message, i) => {
    if (!isObject(message) || typeof message['role'] !== 'string') {
      throw errors.invalidRequest([`'messages[${i}]' must be an object with a string 'role'`], {
        param: `messages[${i}]`,
      })
    }
  })
  return tokens.countChat(messages as ChatMessage[])
}

/** Prompt tokens of each prompt of a completions call (a string, strings, token ids, or lists of ids). */
function completionPrompts(body: Record<string, unknown>, tokens: TokenCounter): number[] {
  const prompt = body['prompt']
  const invalid = () =>
    errors.invalidRequest(["'prompt' is required: a string, an array of strings, or token ids"], { param: 'prompt' })
  if (typeof prompt === 'string') return [tokens.count(prompt)]
  if (!Array.isArray(prompt) || prompt.length === 0) throw invalid()
  if (prompt.every((p) => typeof p === 'number')) return [prompt.length]
  return prompt.map((p: unknown) => {
    if (typeof p === 'string') return tokens.count(p)
    if (Array.isArray(p) && p.every((id) => typeof id === 'number')) return p.length
    throw invalid()
  })
}

/**
 * Validate a completion body and estimate its prompt. Throws `invalid_request` (400, OpenAI shape, `param`
 * naming the field) for what vLLM would refuse anyway, so a bad request never waits in the queue first.
 */
export function parseCompletionRequest(kind: CompletionKind, body: unknown, tokens: TokenCounter): CompletionRequest {
  if (!isObject(body)) throw errors.invalidRequest(['The request body must be a JSON object'])
  const model = body['model']
  if (model !== undefined && model !== null && typeof model !== 'string') {
    throw errors.invalidRequest(["'model' must be a string"], { param: 'model' })
  }
  const stream = body['stream']
  if (stream !== undefined && stream !== null && typeof stream !== 'boolean') {
    throw errors.invalidRequest(["'stream' must be a boolean"], { param: 'stream' })
  }
  const streamOptions = body['stream_options']
  if (streamOptions !== undefined && streamOptions !== null && !isObject(streamOptions)) {
    throw errors.invalidRequest(["'stream_options' must be an object"], { param: 'stream_options' })
  }
  const n = optionalPositiveInteger(body, 'n') ?? 1
  const maxTokens =
    kind === 'chat'
      ? (optionalPositiveInteger(body, 'max_completion_tokens') ?? optionalPositiveInteger(body, 'max_tokens'))
      : (optionalPositiveInteger(body, 'max_tokens') ?? COMPLETIONS_DEFAULT_MAX_TOKENS)

  let promptTokens: number
  let longestPromptTokens: number
  let prompts = 1
  if (kind === 'chat') {
    promptTokens = chatPromptTokens(body, tokens)
    longestPromptTokens = promptTokens
  } else {
    const perPrompt = completionPrompts(body, tokens)
    prompts = perPrompt.length
    promptTokens = perPrompt.reduce((a, b) => a + b, 0)
    longestPromptTokens = Math.max(...perPrompt)
  }
  const sequences = n * prompts
  if (sequences > MAX_SEQUENCES) {
    throw errors.invalidRequest([`'n' × prompts must be at most ${MAX_SEQUENCES}, got ${sequences}`], { param: 'n' })
  }
  // Each of the n sequences of a prompt holds that prompt's blocks (vLLM forks them, but a prefix-cache miss
  // or preemption may copy them): reserve for n copies so the ledger errs on the safe side.
  return {
    kind,
    model: typeof model === 'string' && model.length > 0 ? model : DEFAULT_MODEL_KEY,
    stream: stream === true,
    clientWantsUsage: stream === true && isObject(streamOptions) && streamOptions['include_usage'] !== false,
    maxTokens,
    sequences,
    promptTokens: promptTokens * n,
    longestPromptTokens,
    // Token ids count themselves; text is an estimate of the backend's tokenizer.
    promptTokensExact: kind === 'completion' && promptIsTokenIds(body['prompt']),
    body,
  }
}

/** A completions prompt given as token ids (one list, or a batch of lists). */
function promptIsTokenIds(prompt: unknown): boolean {
  if (!Array.isArray(prompt) || prompt.length === 0) return false
  return prompt.every((p) => typeof p === 'number') || prompt.every((p) => Array.isArray(p))
}

/**
 * The body sent upstream: a streaming request always asks for the usage chunk, so the gateway learns the
 * exact completion length (the chunk is stripped again when the client did not ask for it).
 */
export function upstreamBody(request: GenerationRequest): Record<string, unknown> {
  if (!request.stream) return { ...request.body }
  const streamOptions = isObject(request.body['stream_options']) ? request.body['stream_options'] : {}
  return { ...request.body, stream_options: { ...streamOptions, include_usage: true } }
}
