import { compileRequestSchema, formatErrors, type ValidateFunction } from '../core/index.js'
import { errors } from '../errors/index.js'
import type { TokenCounter } from '../tokens/index.js'
import { DEFAULT_MODEL_KEY } from './completion-request.js'
import { chatCompletionsRoute, completionsRoute } from './completion-routes.js'
import type { GeneratingRoute, GenerationRequest } from './generating-route.js'
import { poolingInputRequest } from './pooling-routes.js'
import {
  chatBodySchema,
  completionBodySchema,
  invocationsBodySchema,
  paramOf,
  poolingBodySchema,
  responsesBodySchema,
} from './request-schemas.js'

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/** The text of a Responses content value: a string, or the `text` of its parts. */
function contentText(content: unknown): string {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) return ''
  return content
    .map((part: unknown) => (isObject(part) && typeof part['text'] === 'string' ? part['text'] : ''))
    .join('\n')
}

/**
 * Prompt tokens of a Responses request: the instructions and every input item's text (a message's content,
 * a tool call's arguments, a tool result's output). One role marker per item, as a chat message has.
 */
function responsesPromptTokens(body: Record<string, unknown>, tokens: TokenCounter): number {
  let total = typeof body['instructions'] === 'string' ? tokens.count(body['instructions']) + 1 : 0
  const input = body['input']
  if (typeof input === 'string') return total + tokens.count(input) + 1
  for (const item of input as unknown[]) {
    if (!isObject(item)) continue
    const output = item['output']
    const text = [contentText(item['content']), typeof item['arguments'] === 'string' ? item['arguments'] : '']
    if (typeof output === 'string') text.push(output)
    total += 1 + tokens.count(text.join('\n'))
  }
  return total
}

/**
 * OpenAI's Responses API. Admitted on its input's size (above) plus the predictor's quantile for the model
 * capped by `max_output_tokens`; the predictor does not learn from it (its answers' lengths are counted on the
 * completion routes). `background: true` is refused: vLLM would go on generating after the response that
 * kvgate admitted closed, and that KV would be held by nobody kvgate knows of. A `previous_response_id`'s
 * stored conversation is not counted (vLLM keeps it only with its responses store on, off by default).
 */
export const responsesRoute: GeneratingRoute = {
  path: '/v1/responses',
  bodySchema: responsesBodySchema,
  parse: (body, tokens) => {
    const record = body as Record<string, unknown>
    if (record['background'] === true) {
      throw errors.invalidRequest(
        ['kvgate admits a response for as long as it is open: send the request without background: true'],
        { param: 'background' },
      )
    }
    const model = record['model']
    const maxOutput = record['max_output_tokens']
    return {
      model: typeof model === 'string' && model.length > 0 ? model : DEFAULT_MODEL_KEY,
      stream: record['stream'] === true,
      // The Responses API has no usage chunk to strip: every event goes to the client.
      clientWantsUsage: true,
      maxTokens: typeof maxOutput === 'number' ? maxOutput : undefined,
      sequences: 1,
      promptTokens: responsesPromptTokens(record, tokens),
      body: record,
    }
  },
  upstreamBody: (request) => ({ ...request.body }),
  predictOutput: (request, predictor) => predictor.predict(request.model, request.maxTokens),
  countOutput: (answer) => {
    const usage = isObject(answer) && isObject(answer['usage']) ? answer['usage'] : {}
    return {
      ...(typeof usage['output_tokens'] === 'number' ? { completionTokens: usage['output_tokens'] } : {}),
      ...(typeof usage['input_tokens'] === 'number' ? { promptTokens: usage['input_tokens'] } : {}),
    }
  },
}

const validators = new Map<object, ValidateFunction>()
/** Validate `body` by a schema, as Fastify validates the other routes' bodies. */
function validate(schema: object, body: unknown): void {
  let check = validators.get(schema)
  if (check === undefined) {
    check = compileRequestSchema(schema)
    validators.set(schema, check)
  }
  if (check(body)) return
  const first = check.errors?.[0]
  const missing = first?.keyword === 'required' ? String(first.params['missingProperty']) : undefined
  const param = first === undefined ? null : paramOf(first.instancePath, missing)
  throw errors.invalidRequest([formatErrors(check.errors, 'body')], param === null ? {} : { param })
}

/** Which route `/invocations` serves a body as: chat (`messages`), completions (`prompt`), pooling (`input`). */
function invocationKind(body: Record<string, unknown>): 'chat' | 'completion' | 'pooling' {
  if (body['messages'] !== undefined && body['input'] === undefined) return 'chat'
  if (body['prompt'] !== undefined) return 'completion'
  if (body['input'] !== undefined) return 'pooling'
  throw errors.invalidRequest(["The body needs 'messages', 'prompt' or 'input'"], { param: 'messages' })
}

/**
 * SageMaker's `/invocations`, which vLLM serves by the body's shape: chat messages, a completion prompt,
 * or pooling input. Admitted like the route it stands for; answered by vLLM's own dispatch, on this path.
 */
export const invocationsRoute: GeneratingRoute = {
  path: '/invocations',
  bodySchema: invocationsBodySchema,
  parse: (body, tokens): GenerationRequest => {
    const record = body as Record<string, unknown>
    const kind = invocationKind(record)
    if (kind === 'pooling') {
      validate(poolingBodySchema, record)
      return poolingInputRequest(record, tokens)
    }
    const route = kind === 'chat' ? chatCompletionsRoute : completionsRoute
    validate(kind === 'chat' ? chatBodySchema : completionBodySchema, record)
    return route.parse(record, tokens)
  },
  upstreamBody: (request) =>
    invocationKind(request.body as Record<string, unknown>) === 'pooling'
      ? { ...request.body }
      : chatCompletionsRoute.upstreamBody(request),
  tokenizeBody: (request) => {
    const kind = invocationKind(request.body as Record<string, unknown>)
    if (kind === 'pooling') return undefined
    return (kind === 'chat' ? chatCompletionsRoute : completionsRoute).tokenizeBody?.(request)
  },
  predictOutput: (request) => (invocationKind(request.body as Record<string, unknown>) === 'pooling' ? 0 : undefined),
}
