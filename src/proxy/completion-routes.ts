import { DEFAULT_MODEL_KEY, parseCompletionRequest, upstreamBody } from './completion-request.js'
import type { ChatMessage } from '../tokens/index.js'
import type { GeneratingRoute, GenerationRequest } from './generating-route.js'
import { chatBodySchema, completionBodySchema } from './request-schemas.js'

/** `/tokenize` takes a model only when the client named one (vLLM then serves its only model). */
const withModel = (request: GenerationRequest, body: Record<string, unknown>): Record<string, unknown> =>
  request.model === DEFAULT_MODEL_KEY ? body : { model: request.model, ...body }

/** OpenAI's chat completions: the prompt is the rendered conversation, with the generation prompt. */
export const chatCompletionsRoute: GeneratingRoute = {
  path: '/v1/chat/completions',
  bodySchema: chatBodySchema,
  parse: (body, tokens) => parseCompletionRequest('chat', body, tokens),
  upstreamBody,
  tokenizeBody: (request) => withModel(request, { messages: request.body['messages'], add_generation_prompt: true }),
  // parse() checked the messages' shape.
  promptTokenIds: (request, tokens) => tokens.encode(tokens.renderChat(request.body['messages'] as ChatMessage[])),
}

/** Legacy completions: one prompt as text can be counted in one call; token ids and batches cannot. */
export const completionsRoute: GeneratingRoute = {
  path: '/v1/completions',
  bodySchema: completionBodySchema,
  parse: (body, tokens) => parseCompletionRequest('completion', body, tokens),
  upstreamBody,
  tokenizeBody: (request) => {
    const prompt = request.body['prompt']
    return typeof prompt === 'string' ? withModel(request, { prompt }) : undefined
  },
  promptTokenIds: (request, tokens) => {
    const prompt = request.body['prompt']
    const first = Array.isArray(prompt) && prompt.length > 0 && typeof prompt[0] !== 'number' ? prompt[0] : prompt
    if (typeof first === 'string') return tokens.encode(first)
    return Array.isArray(first) && first.every((id) => typeof id === 'number') ? (first as number[]) : []
  },
}

/** The two completion routes (every generating route: `GENERATING_ROUTES` in route-table.ts). */
export const COMPLETION_ROUTES: readonly GeneratingRoute[] = [chatCompletionsRoute, completionsRoute]
