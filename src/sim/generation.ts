import { randomUUID } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import type { FastifyReply } from 'fastify'
import type { Clock, Random } from '../core/index.js'
import { errors } from '../errors/index.js'
import type { TokenCounter } from '../tokens/index.js'
import type { Engine, EngineRequest } from './engine.js'
import type { FaultConfig } from './options.js'
import type { OutputLengthSampler } from './output-length.js'
import {
  type ChatBody,
  type CompletionBody,
  completionResponseBody,
  createStreamEncoder,
  DONE_EVENT,
  type FinishReason,
  type Kind,
  type ResponseIdentity,
  vllmErrorBody,
} from './vllm-protocol.js'

/**
 * `POST /v1/chat/completions` and `POST /v1/completions`: vLLM's validation and defaults, the request's
 * output length, the injected faults, and the engine's tokens turned into an SSE stream or a JSON body.
 */
export interface GenerationDeps {
  model: string
  /** The context length in force (capped to the KV cache). */
  maxModelLen: number
  engine: Engine
  tokenCounter: TokenCounter
  clock: Clock
  sampleLength: OutputLengthSampler
  faultRandom: Random
  faults: () => FaultConfig
}

export type GenerationHandler = (kind: Kind, body: ChatBody | CompletionBody, reply: FastifyReply) => Promise<unknown>

/** A request accepted for generation: its prompt and how many tokens it will produce. */
interface Generation extends ResponseIdentity {
  promptIds: number[]
  maxTokens: number
  /** Tokens until the emulated EOS (`stop`), or `maxTokens` (`length`). */
  targetTokens: number
}

interface StreamPlan {
  includeUsage: boolean
  continuousUsage: boolean
  /** Token after which the connection is cut (fault), 0 for never. */
  cutAfter: number
  /** Token after which an error event ends the stream (fault), 0 for never. */
  errorAfter: number
}

export function checkModel(model: string | null | undefined, served: string): void {
  if (model != null && model !== served) {
    throw errors.notFound([`The model \`${model}\` does not exist.`], { param: 'model' })
  }
}

export function createGenerationHandler(deps: GenerationDeps): GenerationHandler {
  const { engine, tokenCounter, maxModelLen } = deps

  const promptIds = (kind: Kind, body: ChatBody | CompletionBody): number[] => {
    if (kind === 'chat') {
      const chat = body as ChatBody
      return tokenCounter.encode(tokenCounter.renderChat(chat.messages, chat.add_generation_prompt ?? true))
    }
    const prompt = (body as CompletionBody).prompt
    if (typeof prompt === 'string') return tokenCounter.encode(prompt)
    const first = prompt[0]
    if (typeof first === 'string') return tokenCounter.encode(first)
    if (Array.isArray(first)) return first.slice()
    return (prompt as number[]).slice()
  }

  /** vLLM's checks and defaults, with its messages; throws a 400 naming the parameter. */
  const plan = (kind: Kind, body: ChatBody | CompletionBody): Generation => {
    checkModel(body.model, deps.model)
    if (body.stream_options != null && body.stream !== true) {
      throw errors.invalidRequest(['Stream options can only be defined when `stream=True`.'], { param: 'stream_options' })
    }
    if (body.priority != null && body.priority !== 0) {
      throw errors.invalidRequest([`Got priority ${body.priority} but Priority scheduling is not enabled.`], { param: 'priority' })
    }
    const ids = promptIds(kind, body)
    const promptTokens = ids.length
    if (promptTokens >= maxModelLen) {
      throw errors.invalidRequest(
        [
          `This model's maximum context length is ${maxModelLen} tokens. However, your request has ${promptTokens} input tokens. Please reduce the length of the input messages.`,
        ],
        { param: 'input_tokens' },
      )
    }
    // Chat prefers `max_completion_tokens`; completions default to 16, chat to the rest of the context.
    const requested = kind === 'chat' ? (body.max_completion_tokens ?? body.max_tokens ?? null) : (body.max_tokens ?? null)
    const room = maxModelLen - promptTokens
    if (requested !== null && requested < 1) {
      throw errors.invalidRequest([`max_tokens must be at least 1, got ${requested}.`], { param: 'max_tokens' })
    }
    if (requested !== null && requested > room) {
      throw errors.invalidRequest(
        [
          `'max_tokens' or 'max_completion_tokens' is too large: ${requested}. This model's maximum context length is ${maxModelLen} tokens and your request has ${promptTokens} input tokens (${requested} > ${maxModelLen} - ${promptTokens}).`,
        ],
        { param: 'max_tokens' },
      )
    }
    const maxTokens = requested ?? (kind === 'chat' ? room : Math.min(16, room))
    const minTokens = body.min_tokens ?? 0
    if (minTokens > maxTokens) {
      throw errors.invalidRequest([`min_tokens must be less than or equal to max_tokens=${maxTokens}, got ${minTokens}.`], {
        param: 'min_tokens',
      })
    }
    // `ignore_eos` runs to max_tokens; otherwise the emulated EOS comes after a drawn length, never
    // before min_tokens.
    const targetTokens = body.ignore_eos === true ? maxTokens : Math.min(maxTokens, Math.max(minTokens, deps.sampleLength()))
    return {
      kind,
      id: (kind === 'chat' ? 'chatcmpl-' : 'cmpl-') + randomUUID().replace(/-/g, ''),
      created: Math.floor(deps.clock.wallNow() / 1000),
      model: deps.model,
      promptTokens,
      promptIds: ids,
      maxTokens,
      targetTokens,
    }
  }

  const finishOf = (generation: Generation, n: number): FinishReason | null =>
    n < generation.targetTokens ? null : n >= generation.maxTokens ? 'length' : 'stop'

  const stream = (res: ServerResponse, generation: Generation, streamPlan: StreamPlan): void => {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' })
    // Headers go out at once, as from vLLM: a queued request already has its 200 while it waits for a seat.
    res.flushHeaders()
    const encoder = createStreamEncoder(generation, streamPlan.continuousUsage)
    let done = false
    let engineRequest: EngineRequest | undefined
    // The client hung up: vLLM aborts the request and frees its blocks.
    res.on('close', () => {
      if (!done) engineRequest?.abort()
    })
    engineRequest = engine.add(
      { promptTokenIds: generation.promptIds, maxTokens: generation.maxTokens, targetTokens: generation.targetTokens },
      {
        onToken(text, n) {
          const finish = finishOf(generation, n)
          const chunk = encoder.token(text, n, finish)
          if (finish === null && streamPlan.errorAfter > 0 && n >= streamPlan.errorAfter) {
            done = true
            engineRequest?.abort('error')
            const error = errors.internal(['injected fault: the engine failed mid-stream'])
            res.end(chunk + encoder.error(vllmErrorBody(error)) + DONE_EVENT)
            return
          }
          if (finish === null && streamPlan.cutAfter > 0 && n >= streamPlan.cutAfter) {
            // The connection drops as when a server process dies; the chunk is flushed first so the client
            // sees exactly `cutAfter` tokens.
            done = true
            engineRequest?.abort('error')
            res.write(chunk, () => res.destroy())
            return
          }
          res.write(chunk)
        },
        onFinish() {
          done = true
          const usage = streamPlan.includeUsage ? encoder.usage(engineRequest?.outputTokens() ?? 0) : ''
          res.end(usage + DONE_EVENT)
        },
      },
    )
  }

  const complete = (reply: FastifyReply, generation: Generation): Promise<unknown> =>
    new Promise((resolve) => {
      const pieces: string[] = []
      let done = false
      const engineRequest = engine.add(
        { promptTokenIds: generation.promptIds, maxTokens: generation.maxTokens, targetTokens: generation.targetTokens },
        {
          onToken(text) {
            pieces.push(text)
          },
          onFinish(reason) {
            done = true
            resolve(completionResponseBody(generation, pieces.join(''), engineRequest.outputTokens(), reason))
          },
        },
      )
      reply.raw.on('close', () => {
        if (done) return
        // The client hung up before the answer: abort, and settle the handler without a reply to send.
        engineRequest.abort()
        reply.hijack()
        resolve(undefined)
      })
    })

  return async (kind, body, reply) => {
    const generation = plan(kind, body)
    const faults = deps.faults()
    if (faults.engineDead) throw errors.internal(['injected fault: the engine is dead (EngineDeadError)'])
    if (faults.errorRate > 0 && deps.faultRandom.next() < faults.errorRate) {
      throw errors.internal(['injected fault: the engine failed this request'])
    }
    if (body.stream !== true) return complete(reply, generation)
    const streamOptions = body.stream_options ?? null
    const halfway = Math.max(1, Math.floor(generation.targetTokens / 2))
    // `include_usage` defaults to true once `stream_options` is present at all; per-chunk usage needs it.
    const includeUsage = streamOptions !== null && streamOptions.include_usage !== false
    const streamPlan: StreamPlan = {
      includeUsage,
      continuousUsage: includeUsage && streamOptions.continuous_usage_stats === true,
      cutAfter: faults.streamCutRate > 0 && deps.faultRandom.next() < faults.streamCutRate ? halfway : 0,
      errorAfter: faults.streamErrorRate > 0 && deps.faultRandom.next() < faults.streamErrorRate ? halfway : 0,
    }
    reply.hijack()
    stream(reply.raw, generation, streamPlan)
    return reply
  }
}
