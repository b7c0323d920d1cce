import { type TSchema, Type } from 'typebox'
import { nullable } from '../core/index.js'

/**
 * The body shapes of vLLM's generating routes, as far as kvgate reads them (read from vLLM's protocol
 * models: `ChatCompletionRequest`, `CompletionRequest`, `ResponsesRequest`, `EmbeddingCompletionRequest` /
 * `EmbeddingChatRequest`, `ClassificationRequest`, `ScoreRequest`, `RerankRequest`). Fastify validates each
 * body against its route's schema before the handler runs (compiled with the shared validator, first error
 * only, see `compileRequestSchema`), so a malformed shape is a 400 naming the field before it can reach the
 * token counter, the queue or a backend. Fields kvgate does not read are left to vLLM (extra fields pass).
 */

const text = () => Type.String()
const positiveInteger = () => nullable(Type.Integer({ minimum: 1 }))

/** Common generation fields kvgate reads (admission, streaming, identity). */
const generationFields = {
  model: Type.Optional(nullable(text())),
  stream: Type.Optional(nullable(Type.Boolean())),
  stream_options: Type.Optional(nullable(Type.Object({}))),
  n: Type.Optional(positiveInteger()),
  max_tokens: Type.Optional(positiveInteger()),
  user: Type.Optional(nullable(text())),
}

/** A content part: `{type: "text", text}`, `{type: "image_url", image_url}`, …; text, when present, a string. */
const contentPart = Type.Object({ type: text(), text: Type.Optional(text()) })

/** `string | parts[] | null`, as one type list so a wrong value gets one error. */
const messageContent = Type.Unsafe<unknown>({ type: ['string', 'array', 'null'], items: contentPart })

const chatMessage = Type.Object({
  role: text(),
  content: Type.Optional(messageContent),
  name: Type.Optional(nullable(text())),
})

const messages = () => Type.Array(chatMessage, { minItems: 1 })

export const chatBodySchema = Type.Object({
  ...generationFields,
  messages: messages(),
  max_completion_tokens: Type.Optional(positiveInteger()),
  tools: Type.Optional(nullable(Type.Array(Type.Object({})))),
})

/** A prompt: text, texts, token ids, or lists of token ids (a mixed list is refused by the route). */
const promptItem = Type.Unsafe<unknown>({ type: ['string', 'integer', 'array'], items: { type: 'integer' } })
const prompt = Type.Unsafe<unknown>({ type: ['string', 'array'], minItems: 1, items: promptItem })

export const completionBodySchema = Type.Object({ ...generationFields, prompt })

/** Pooling input: `input` (text, texts, ids, lists of ids) or chat `messages`. */
const poolingInput = prompt
export const poolingBodySchema = Type.Object(
  {
    model: Type.Optional(nullable(text())),
    input: Type.Optional(poolingInput),
    messages: Type.Optional(messages()),
    user: Type.Optional(nullable(text())),
  },
  { anyOf: [{ required: ['input'] }, { required: ['messages'] }] },
)

/** A score or rerank side: text, texts, or vLLM's multimodal `{content: [parts]}`. */
const scoreSide = Type.Unsafe<unknown>({
  type: ['string', 'array', 'object'],
  items: { type: ['string', 'object'] },
  properties: { content: Type.Array(contentPart) },
})

export const scoreBodySchema = Type.Object(
  {
    model: Type.Optional(nullable(text())),
    text_1: Type.Optional(scoreSide),
    text_2: Type.Optional(scoreSide),
    data_1: Type.Optional(scoreSide),
    data_2: Type.Optional(scoreSide),
    user: Type.Optional(nullable(text())),
  },
  { anyOf: [{ required: ['text_1', 'text_2'] }, { required: ['data_1', 'data_2'] }] },
)

export const rerankBodySchema = Type.Object({
  model: Type.Optional(nullable(text())),
  query: scoreSide,
  documents: scoreSide,
  top_n: Type.Optional(nullable(Type.Integer({ minimum: 0 }))),
  user: Type.Optional(nullable(text())),
})

/** A Responses input item: a message (`role` + content) or another typed item (`function_call_output`, …). */
const responsesItem = Type.Object({
  type: Type.Optional(text()),
  role: Type.Optional(text()),
  content: Type.Optional(messageContent),
  output: Type.Optional(Type.Unsafe<unknown>({ type: ['string', 'array', 'object', 'null'] })),
})

export const responsesBodySchema = Type.Object({
  model: Type.Optional(nullable(text())),
  input: Type.Unsafe<unknown>({ type: ['string', 'array'], items: responsesItem }),
  instructions: Type.Optional(nullable(text())),
  max_output_tokens: Type.Optional(positiveInteger()),
  stream: Type.Optional(nullable(Type.Boolean())),
  background: Type.Optional(nullable(Type.Boolean())),
  previous_response_id: Type.Optional(nullable(text())),
  user: Type.Optional(nullable(text())),
})

/** SageMaker's `/invocations` takes any of the above; the route picks the shape by its fields. */
export const invocationsBodySchema: TSchema = Type.Object({})

/**
 * An instance path (`/messages/0/content/1`) as OpenAI's `param` names a field: `messages[0].content[1]`.
 * A missing field names itself (`messages`), as the route's own checks do.
 */
export function paramOf(instancePath: string, missingProperty?: string): string | null {
  const parts = instancePath.split('/').slice(1)
  if (missingProperty !== undefined) parts.push(missingProperty)
  let out = ''
  for (const part of parts) out += /^\d+$/.test(part) ? `[${part}]` : out === '' ? part : `.${part}`
  return out === '' ? null : out
}
