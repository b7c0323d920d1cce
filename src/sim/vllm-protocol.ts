import type { KvgateError } from '../errors/index.js'
import type { ChatMessage } from '../tokens/index.js'

/**
 * vLLM's OpenAI-compatible wire format, as `vllm/entrypoints/openai/*` writes it: request schemas, error
 * bodies, SSE chunks and whole responses. Only the shape lives here; `generation.ts` decides what to send.
 */

/** The vLLM release whose API and metrics the emulator follows; `GET /version` reports it. */
export const EMULATED_VLLM_VERSION = '0.11.0'

// vLLM names an error's `type` after the HTTP status's exception class and puts the status in `code`.
const ERROR_TYPES: Readonly<Record<number, string>> = {
  400: 'BadRequestError',
  404: 'NotFoundError',
  500: 'InternalServerError',
  503: 'ServiceUnavailableError',
}

export interface VllmErrorBody {
  error: { message: string; type: string; param: string | null; code: number }
}

/** vLLM ≥ 0.10.1's `ErrorResponse`: `{"error": {message, type, param, code}}` with the status as `code`. */
export function vllmErrorBody(err: KvgateError): VllmErrorBody {
  return {
    error: {
      message: err.message,
      type: ERROR_TYPES[err.statusCode] ?? 'InternalServerError',
      param: err.param,
      code: err.statusCode,
    },
  }
}

/** `n` beyond this is refused: each choice is a sequence in the batch. */
export const MAX_CHOICES = 128

const nullableInteger = { type: ['integer', 'null'] } as const
const nullableBoolean = { type: ['boolean', 'null'] } as const
const nullableString = { type: ['string', 'null'] } as const

const samplingProperties = {
  model: nullableString,
  stream: nullableBoolean,
  stream_options: {
    type: ['object', 'null'],
    properties: { include_usage: nullableBoolean, continuous_usage_stats: nullableBoolean },
  },
  max_tokens: nullableInteger,
  min_tokens: { type: 'integer', minimum: 0 },
  ignore_eos: { type: 'boolean' },
  n: { type: ['integer', 'null'], minimum: 1, maximum: MAX_CHOICES },
  priority: nullableInteger,
  seed: nullableInteger,
  request_id: nullableString,
  stop: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }, { type: 'null' }] },
  // vLLM's extra sampling arguments, `dict[str, str | int | float | list[str | int | float]]`: checked in
  // generation.ts, since Fastify's type coercion would turn a number into a string here.
  vllm_xargs: { type: ['object', 'null'] },
} as const

/** Fastify body schemas: type errors become vLLM's 400 through the error handler. */
export const chatRequestSchema = {
  type: 'object',
  required: ['messages'],
  properties: {
    ...samplingProperties,
    max_completion_tokens: nullableInteger,
    add_generation_prompt: { type: 'boolean' },
    messages: {
      type: 'array',
      minItems: 1,
      items: { type: 'object', required: ['role'], properties: { role: { type: 'string' } } },
    },
  },
} as const

export const completionRequestSchema = {
  type: 'object',
  required: ['prompt'],
  properties: {
    ...samplingProperties,
    // A string, a list of one string, a list of token ids, or a list of one list of token ids.
    prompt: {
      anyOf: [
        { type: 'string' },
        { type: 'array', minItems: 1, maxItems: 1, items: { type: 'string' } },
        { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 } },
        { type: 'array', minItems: 1, maxItems: 1, items: { type: 'array', items: { type: 'integer', minimum: 0 } } },
      ],
    },
  },
} as const

export const tokenizeRequestSchema = {
  type: 'object',
  properties: {
    model: nullableString,
    prompt: { type: 'string' },
    messages: { type: 'array', items: { type: 'object', required: ['role'] } },
    add_generation_prompt: { type: 'boolean' },
  },
  anyOf: [{ required: ['prompt'] }, { required: ['messages'] }],
} as const

export const detokenizeRequestSchema = {
  type: 'object',
  required: ['tokens'],
  properties: { model: nullableString, tokens: { type: 'array', items: { type: 'integer', minimum: 0 } } },
} as const

export interface SamplingBody {
  model?: string | null
  stream?: boolean | null
  stream_options?: { include_usage?: boolean | null; continuous_usage_stats?: boolean | null } | null
  max_tokens?: number | null
  max_completion_tokens?: number | null
  min_tokens?: number
  ignore_eos?: boolean
  priority?: number | null
  n?: number | null
  seed?: number | null
  request_id?: string | null
  stop?: string | string[] | null
  vllm_xargs?: Record<string, string | number | Array<string | number>> | null
}

export interface ChatBody extends SamplingBody {
  messages: ChatMessage[]
  add_generation_prompt?: boolean
}

export interface CompletionBody extends SamplingBody {
  prompt: string | string[] | number[] | number[][]
}

export interface TokenizeBody {
  model?: string | null
  prompt?: string
  messages?: ChatMessage[]
  add_generation_prompt?: boolean
}

export interface DetokenizeBody {
  model?: string | null
  tokens: number[]
}

export type Kind = 'chat' | 'completion'
export type FinishReason = 'stop' | 'length'

/** What every chunk and body of one response shares. */
export interface ResponseIdentity {
  kind: Kind
  id: string
  created: number
  model: string
  promptTokens: number
}

export function usageJson(prompt: number, completion: number): string {
  return `{"prompt_tokens":${prompt},"total_tokens":${prompt + completion},"completion_tokens":${completion}}`
}

/** Builds the `data: …\n\n` events of one stream. */
export interface StreamEncoder {
  /**
   * The event(s) for output token `n` of choice `index`: for chat a choice's first token also brings its
   * role chunk (vLLM sends it with the first output), and its last carries `finish_reason` and
   * `stop_reason` (the matched stop string, or null) with its text. `completionTokens` is the choice's
   * running total for continuous usage.
   */
  token(
    text: string,
    n: number,
    finish: FinishReason | null,
    index?: number,
    completionTokens?: number,
    stopReason?: string | null,
  ): string
  /** The final usage chunk (`choices: []`). */
  usage(completionTokens: number): string
  /** An error after the stream started: vLLM can no longer change the status, so it sends this, then [DONE]. */
  error(body: VllmErrorBody): string
}

export const DONE_EVENT = 'data: [DONE]\n\n'

export function createStreamEncoder(response: ResponseIdentity, continuousUsage: boolean): StreamEncoder {
  const chat = response.kind === 'chat'
  const object = chat ? 'chat.completion.chunk' : 'text_completion'
  const prefix = `data: {"id":"${response.id}","object":"${object}","created":${response.created},"model":${JSON.stringify(response.model)},"choices":[`
  // Every chunk shares the prefix; building it once keeps a token's cost to a few small string concats.
  const tail = (completion: number): string =>
    continuousUsage ? `],"usage":${usageJson(response.promptTokens, completion)}}\n\n` : ']}\n\n'
  const finishJson = (finish: FinishReason | null): string => (finish === null ? 'null' : `"${finish}"`)
  return {
    token(text, n, finish, index = 0, completionTokens = n, stopReason = null) {
      const stopJson = stopReason === null ? 'null' : JSON.stringify(stopReason)
      if (!chat) {
        return `${prefix}{"index":${index},"text":${JSON.stringify(text)},"logprobs":null,"finish_reason":${finishJson(finish)},"stop_reason":${stopJson}}${tail(completionTokens)}`
      }
      const role =
        n === 1
          ? `${prefix}{"index":${index},"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}${tail(completionTokens - 1)}`
          : ''
      const stop = finish === null ? '' : `,"stop_reason":${stopJson}`
      return `${role}${prefix}{"index":${index},"delta":{"content":${JSON.stringify(text)}},"logprobs":null,"finish_reason":${finishJson(finish)}${stop}}${tail(completionTokens)}`
    },
    usage(completionTokens) {
      return `${prefix}],"usage":${usageJson(response.promptTokens, completionTokens)}}\n\n`
    },
    error(body) {
      return `data: ${JSON.stringify(body)}\n\n`
    },
  }
}

export interface ChoiceResult {
  text: string
  tokens: number
  finish: FinishReason
  /** The stop string that ended it, if any. */
  stopReason: string | null
}

/** The non-streaming body: `chat.completion` or `text_completion`, one choice per result, with every field vLLM sets. */
export function completionResponseBody(response: ResponseIdentity, results: readonly ChoiceResult[]): object {
  const completionTokens = results.reduce((sum, r) => sum + r.tokens, 0)
  const usage = {
    prompt_tokens: response.promptTokens,
    total_tokens: response.promptTokens + completionTokens,
    completion_tokens: completionTokens,
    prompt_tokens_details: null,
  }
  const common = { id: response.id, created: response.created, model: response.model }
  if (response.kind === 'chat') {
    const choices = results.map(({ text, finish, stopReason }, index) => ({
      index,
      message: {
        role: 'assistant',
        content: text,
        refusal: null,
        annotations: null,
        audio: null,
        function_call: null,
        tool_calls: [],
        reasoning_content: null,
      },
      logprobs: null,
      finish_reason: finish,
      stop_reason: stopReason,
    }))
    return {
      ...common,
      object: 'chat.completion',
      choices,
      service_tier: null,
      system_fingerprint: null,
      usage,
      prompt_logprobs: null,
      kv_transfer_params: null,
    }
  }
  return {
    ...common,
    object: 'text_completion',
    choices: results.map(({ text, finish, stopReason }, index) => ({
      index,
      text,
      logprobs: null,
      finish_reason: finish,
      stop_reason: stopReason,
      prompt_logprobs: null,
    })),
    service_tier: null,
    system_fingerprint: null,
    usage,
    kv_transfer_params: null,
  }
}
