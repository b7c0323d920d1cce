import { randomUUID } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import type { FastifyReply } from 'fastify'
import { createSeededRandom, type Clock, type Random } from '../core/index.js'
import { errors } from '../errors/index.js'
import type { TokenCounter } from '../tokens/index.js'
import type { Engine, EngineRequest, EngineSink } from './engine.js'
import { injectedFault } from './fault-effects.js'
import type { SimMetrics } from './metrics.js'
import type { ModelCatalog, ServedModel } from './models.js'
import type { FaultConfig, OutputLengthDistribution } from './options.js'
import { createOutputLengthSampler, type OutputLengthSampler } from './output-length.js'
import { createStopMatcher } from './stop-strings.js'
import {
  type ChatBody,
  type CompletionBody,
  type ChoiceResult,
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
  catalog: ModelCatalog
  /** Per-request metrics of a `model_name`. */
  metricsOf: (metricsName: string) => SimMetrics
  /** The context length in force (capped to the KV cache). */
  maxModelLen: number
  engine: Engine
  tokenCounter: TokenCounter
  clock: Clock
  /** Output lengths of requests without a `seed`, from the emulator's seeded stream. */
  sampleLength: OutputLengthSampler
  /** The distribution, for requests that bring their own `seed`. */
  outputLength: OutputLengthDistribution
  faultRandom: Random
  faults: () => FaultConfig
}

export type GenerationHandler = (kind: Kind, body: ChatBody | CompletionBody, reply: FastifyReply) => Promise<unknown>

/** A request accepted for generation: its prompt and how many tokens each of its `n` choices produces. */
interface Generation extends ResponseIdentity {
  served: ServedModel
  promptIds: number[]
  maxTokens: number
  /** Per choice: tokens until the emulated EOS (`stop`), or `maxTokens` (`length`). */
  targetTokens: number[]
  /** Per choice, when the request has a `seed`: the stream its words are drawn from. */
  randoms: Array<Random | undefined>
  stop: string[]
  /** The answer is the model's end-of-sequence at once (out-of-band length 0): one token, no text. */
  eosFirst: boolean
}

interface StreamPlan {
  includeUsage: boolean
  continuousUsage: boolean
  /** Token after which the connection is cut (fault), 0 for never. */
  cutAfter: number
  /** Token after which an error event ends the stream (fault), 0 for never. */
  errorAfter: number
}

/**
 * The wire contract with `kvgate bench`: `"vllm_xargs": {"kvgate_sim_output_tokens": N}` is the answer's
 * natural length, after which the emulated model emits its end-of-sequence. `vllm_xargs` is vLLM's own
 * field for extra sampling arguments, so a real vLLM accepts the same body and ignores the key.
 */
export const OUTPUT_TOKENS_XARG = 'kvgate_sim_output_tokens'

const isScalar = (v: unknown): boolean => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v))

function outOfBandLength(body: ChatBody | CompletionBody): number | null {
  const xargs = body.vllm_xargs
  if (xargs == null) return null
  for (const [key, v] of Object.entries(xargs)) {
    if (!isScalar(v) && !(Array.isArray(v) && v.every(isScalar))) {
      throw errors.invalidRequest([`vllm_xargs.${key} must be a string, a number or a list of them.`], {
        param: `vllm_xargs.${key}`,
      })
    }
  }
  const value = xargs[OUTPUT_TOKENS_XARG]
  if (value === undefined) return null
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw errors.invalidRequest(
      [`vllm_xargs.${OUTPUT_TOKENS_XARG} must be a non-negative integer, got ${JSON.stringify(value)}.`],
      { param: `vllm_xargs.${OUTPUT_TOKENS_XARG}` },
    )
  }
  return value
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
  const plan = (kind: Kind, body: ChatBody | CompletionBody, headerRequestId: string | undefined): Generation => {
    const served = deps.catalog.resolve(body.model)
    if (body.stream_options != null && body.stream !== true) {
      throw errors.invalidRequest(['Stream options can only be defined when `stream=True`.'], {
        param: 'stream_options',
      })
    }
    if (body.priority != null && body.priority !== 0) {
      throw errors.invalidRequest([`Got priority ${body.priority} but Priority scheduling is not enabled.`], {
        param: 'priority',
      })
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
    const requested =
      kind === 'chat' ? (body.max_completion_tokens ?? body.max_tokens ?? null) : (body.max_tokens ?? null)
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
      throw errors.invalidRequest(
        [`min_tokens must be less than or equal to max_tokens=${maxTokens}, got ${minTokens}.`],
        {
          param: 'min_tokens',
        },
      )
    }
    // The answer's natural length: told out of band (the bench knows the trace's), else drawn. A request
    // with a `seed` gets the same lengths and text every time, whatever else the server serves.
    const told = outOfBandLength(body)
    const seed = body.seed ?? null
    const sample =
      told !== null
        ? () => told
        : seed === null
          ? deps.sampleLength
          : createOutputLengthSampler(deps.outputLength, createSeededRandom(seed))
    const n = body.n ?? 1
    // `ignore_eos` runs to max_tokens; otherwise the emulated EOS comes after the natural length, never
    // before min_tokens, and at least one token is generated (an EOS first is still a token).
    const targetTokens = Array.from({ length: n }, () =>
      body.ignore_eos === true ? maxTokens : Math.max(1, Math.min(maxTokens, Math.max(minTokens, sample()))),
    )
    const randoms = Array.from({ length: n }, (_, i) => (seed === null ? undefined : createSeededRandom(seed + 1 + i)))
    // As vLLM: the X-Request-Id header, else the body's request_id, else a random id.
    const baseId = headerRequestId ?? body.request_id ?? randomUUID().replace(/-/g, '')
    return {
      kind,
      id: (kind === 'chat' ? 'chatcmpl-' : 'cmpl-') + baseId,
      created: Math.floor(deps.clock.wallNow() / 1000),
      model: served.responseName,
      served,
      promptTokens,
      promptIds: ids,
      maxTokens,
      targetTokens,
      randoms,
      stop: typeof body.stop === 'string' ? [body.stop] : (body.stop ?? []),
      eosFirst: told === 0 && minTokens === 0 && body.ignore_eos !== true,
    }
  }

  const finishOf = (generation: Generation, choice: number, n: number): FinishReason | null =>
    n < generation.targetTokens[choice]! ? null : n >= generation.maxTokens ? 'length' : 'stop'

  /** One engine sequence per choice, as vLLM fans `n` out into child requests sharing the prompt. */
  const addChoices = (generation: Generation, sink: (choice: number) => EngineSink): EngineRequest[] =>
    generation.targetTokens.map((targetTokens, choice) => {
      const random = generation.randoms[choice]
      return engine.add(
        {
          promptTokenIds: generation.promptIds,
          maxTokens: generation.maxTokens,
          targetTokens,
          metrics: deps.metricsOf(generation.served.metricsName),
          cacheSalt: generation.served.cacheSalt,
          ...(random === undefined ? {} : { random }),
        },
        sink(choice),
      )
    })

  const stream = (res: ServerResponse, generation: Generation, streamPlan: StreamPlan): void => {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    })
    // Headers go out at once, as from vLLM: a queued request already has its 200 while it waits for a seat.
    res.flushHeaders()
    const encoder = createStreamEncoder(generation, streamPlan.continuousUsage)
    let done = false
    let unfinished = generation.targetTokens.length
    let completionTokens = 0
    const abortAll = (reason?: 'abort' | 'error'): void => {
      for (const request of engineRequests) request.abort(reason)
    }
    const matchers = generation.targetTokens.map(() => createStopMatcher(generation.stop))
    const engineRequests: EngineRequest[] = addChoices(generation, (choice) => ({
      onToken(word, n) {
        // An EOS sampled first is one token without text.
        const text = generation.eosFirst ? '' : word
        completionTokens++
        let finish = finishOf(generation, choice, n)
        // The common case has no stop strings: no matcher, nothing allocated per token.
        let emit = text
        let stop: string | null = null
        const matcher = matchers[choice]
        if (matcher != null) ({ emit, stop } = matcher.push(text, finish !== null))
        if (stop !== null) finish = 'stop'
        // Continuous usage counts this choice's own tokens, as vLLM's `previous_num_tokens[i]`; the final
        // usage chunk sums every choice.
        const chunk = encoder.token(emit, n, finish, choice, n, stop)
        // Faults trigger on the first choice's progress.
        if (choice === 0 && finish === null && streamPlan.errorAfter > 0 && n >= streamPlan.errorAfter) {
          done = true
          abortAll('error')
          const error = injectedFault('the engine failed mid-stream')
          res.end(chunk + encoder.error(vllmErrorBody(error)) + DONE_EVENT)
          return
        }
        if (choice === 0 && finish === null && streamPlan.cutAfter > 0 && n >= streamPlan.cutAfter) {
          // The connection drops as when a server process dies; the chunk is flushed first so the client
          // sees exactly `cutAfter` tokens.
          done = true
          abortAll('error')
          res.write(chunk, () => res.destroy())
          return
        }
        res.write(chunk)
        return stop !== null
      },
      onFinish() {
        if (--unfinished > 0) return
        done = true
        res.end((streamPlan.includeUsage ? encoder.usage(completionTokens) : '') + DONE_EVENT)
      },
    }))
    // The client hung up: vLLM aborts the request and frees its blocks.
    res.on('close', () => {
      if (!done) abortAll()
    })
  }

  const complete = (reply: FastifyReply, generation: Generation): Promise<unknown> =>
    new Promise((resolve) => {
      const n = generation.targetTokens.length
      const pieces: string[][] = Array.from({ length: n }, () => [])
      const tokens = new Array<number>(n).fill(0)
      const stopReasons = new Array<string | null>(n).fill(null)
      const matchers = generation.targetTokens.map(() => createStopMatcher(generation.stop))
      const results: ChoiceResult[] = new Array<ChoiceResult>(n)
      let unfinished = n
      const engineRequests = addChoices(generation, (choice) => ({
        onToken(word, k) {
          const text = generation.eosFirst ? '' : word
          tokens[choice] = k
          const matched = matchers[choice]?.push(text, finishOf(generation, choice, k) !== null) ?? {
            emit: text,
            stop: null,
          }
          pieces[choice]!.push(matched.emit)
          stopReasons[choice] = matched.stop
          return matched.stop !== null
        },
        onFinish(reason) {
          results[choice] = {
            text: pieces[choice]!.join(''),
            tokens: tokens[choice]!,
            finish: reason,
            stopReason: stopReasons[choice]!,
          }
          if (--unfinished === 0) resolve(completionResponseBody(generation, results))
        },
      }))
      reply.raw.on('close', () => {
        if (unfinished === 0) return
        // The client hung up before the answer: abort, and settle the handler without a reply to send.
        for (const request of engineRequests) request.abort()
        reply.hijack()
        resolve(undefined)
      })
    })

  return async (kind, body, reply) => {
    const headerId = reply.request.headers['x-request-id']
    const generation = plan(kind, body, typeof headerId === 'string' && headerId !== '' ? headerId : undefined)
    const faults = deps.faults()
    if (faults.engineDead) throw injectedFault('the engine is dead (EngineDeadError)')
    if (faults.errorRate > 0 && deps.faultRandom.next() < faults.errorRate) {
      throw injectedFault('the engine failed this request')
    }
    // Once per request, however many sequences its choices become.
    deps.metricsOf(generation.served.metricsName).requestParamsN.observe(generation.targetTokens.length)
    if (body.stream !== true) return complete(reply, generation)
    const streamOptions = body.stream_options ?? null
    const halfway = Math.max(1, Math.floor(generation.targetTokens[0]! / 2))
    // `include_usage` defaults to true once `stream_options` is present at all; per-chunk usage needs it.
    // vLLM reads the field as sent, so an explicit null is falsy like false.
    const includeUsage =
      streamOptions !== null && (streamOptions.include_usage === undefined || streamOptions.include_usage === true)
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
