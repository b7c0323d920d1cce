import { errors } from '../errors/index.js'
import type { ChatMessage, TokenCounter } from '../tokens/index.js'
import { DEFAULT_MODEL_KEY, upstreamBody } from './completion-request.js'
import type { GeneratingRoute, GenerationRequest } from './generating-route.js'
import { poolingBodySchema, rerankBodySchema, scoreBodySchema } from './request-schemas.js'

/**
 * vLLM's pooling routes: embeddings, pooling, classification, scoring and reranking. They generate no token,
 * but each input (or each pair, for a cross-encoder) is a sequence whose prompt is prefilled into KV blocks,
 * and a batch of them is as much KV as a generation's prompt: so they are admitted on the prompt alone. The
 * documented output estimate is 0 tokens per sequence, and the predictor does not learn from them.
 */

// OpenAI's limit on inputs of one embeddings call; beyond it a request is refused rather than reserved.
const MAX_POOLING_INPUTS = 2048

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

const modelOf = (body: Record<string, unknown>): string =>
  typeof body['model'] === 'string' && body['model'].length > 0 ? body['model'] : DEFAULT_MODEL_KEY

function poolingRequest(body: Record<string, unknown>, perSequence: readonly number[]): GenerationRequest {
  if (perSequence.length > MAX_POOLING_INPUTS) {
    throw errors.invalidRequest([`At most ${MAX_POOLING_INPUTS} inputs per request, got ${perSequence.length}`])
  }
  return {
    model: modelOf(body),
    stream: false,
    clientWantsUsage: false,
    maxTokens: undefined,
    sequences: Math.max(1, perSequence.length),
    promptTokens: perSequence.reduce((a, b) => a + b, 0),
    body,
  }
}

/** Tokens of each input: text, texts, token ids, or lists of ids; or chat messages (one sequence). */
function inputTokens(body: Record<string, unknown>, tokens: TokenCounter): number[] {
  if (body['messages'] !== undefined) return [tokens.countChat(body['messages'] as ChatMessage[])]
  const input = body['input']
  const invalid = () =>
    errors.invalidRequest(["'input' must be a string, strings, token ids, or lists of token ids"], {
      param: 'input',
    })
  if (typeof input === 'string') return [tokens.count(input)]
  if (!Array.isArray(input) || input.length === 0) throw invalid()
  if (input.every((item) => typeof item === 'number')) return [input.length]
  return input.map((item: unknown) => {
    if (typeof item === 'string') return tokens.count(item)
    if (Array.isArray(item) && item.every((id) => typeof id === 'number')) return item.length
    throw invalid()
  })
}

/** The text of one score or rerank item: a string, or the text parts of vLLM's multimodal `{content}`. */
function itemText(item: unknown): string {
  if (typeof item === 'string') return item
  if (!isObject(item) || !Array.isArray(item['content'])) return ''
  return item['content']
    .map((part: unknown) => (isObject(part) && typeof part['text'] === 'string' ? part['text'] : ''))
    .join('\n')
}

/** A side of a score request as a list of texts (one string, a list, or one multimodal item). */
const sideTexts = (side: unknown): string[] => (Array.isArray(side) ? side.map(itemText) : [itemText(side)])

/**
 * A cross-encoder scores pairs, each one sequence of both texts: one `text_1` against every `text_2`, or
 * `text_1[i]` against `text_2[i]` (vLLM refuses lists of different lengths, and so does kvgate).
 */
function pairTokens(first: string[], second: string[], tokens: TokenCounter, param: string): number[] {
  if (first.length !== 1 && first.length !== second.length) {
    throw errors.invalidRequest([`'${param}' must hold one item or as many as the other side`], { param })
  }
  const left = first.map((text) => tokens.count(text))
  return second.map((text, i) => (left[first.length === 1 ? 0 : i] ?? 0) + tokens.count(text))
}

const poolingRoute = (path: string): GeneratingRoute => ({
  path,
  bodySchema: poolingBodySchema,
  parse: (body, tokens) => {
    const record = body as Record<string, unknown>
    return poolingRequest(record, inputTokens(record, tokens))
  },
  upstreamBody,
  predictOutput: () => 0,
})

/** `/v1/embeddings` (OpenAI's), `/pooling` (vLLM's raw pooler output), `/classify`. */
export const embeddingsRoute = poolingRoute('/v1/embeddings')
export const poolingOutputRoute = poolingRoute('/pooling')
export const classifyRoute = poolingRoute('/classify')

/** `/score` (and vLLM's `/v1/score`): `text_1` × `text_2` (or their newer names `data_1`, `data_2`). */
export const scoreRoute: GeneratingRoute = {
  path: '/score',
  aliases: ['/v1/score'],
  bodySchema: scoreBodySchema,
  parse: (body, tokens) => {
    const record = body as Record<string, unknown>
    const [a, b] = record['text_1'] !== undefined ? ['text_1', 'text_2'] : ['data_1', 'data_2']
    return poolingRequest(record, pairTokens(sideTexts(record[a]), sideTexts(record[b]), tokens, a))
  },
  upstreamBody,
  predictOutput: () => 0,
}

/** `/rerank` (Jina's shape; `/v1/rerank` and `/v2/rerank` are vLLM's aliases): `query` × each document. */
export const rerankRoute: GeneratingRoute = {
  path: '/rerank',
  aliases: ['/v1/rerank', '/v2/rerank'],
  bodySchema: rerankBodySchema,
  parse: (body, tokens) => {
    const record = body as Record<string, unknown>
    const documents = sideTexts(record['documents'])
    return poolingRequest(record, pairTokens([itemText(record['query'])], documents, tokens, 'query'))
  },
  upstreamBody,
  predictOutput: () => 0,
}

/** `/invocations` reads an embeddings-shaped body as the pooling routes do. */
export const poolingInputRequest = (body: Record<string, unknown>, tokens: TokenCounter): GenerationRequest =>
  poolingRequest(body, inputTokens(body, tokens))
