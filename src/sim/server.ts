import { randomUUID } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import Fastify, { type FastifyBaseLogger, type FastifyReply } from 'fastify'
import type pino from 'pino'
import { createScaledClock, createSeededRandom, type Clock } from '../core/index.js'
import { errors, KvgateError } from '../errors/index.js'
import { createWordPieceTokenCounter, type ChatMessage } from '../tokens/index.js'
import { createEngine, type EngineRequest, type EngineState } from './engine.js'
import { parseFaults } from './faults.js'
import { createSimMetrics, renderMetrics } from './metrics.js'
import { type FaultConfig, resolveSimOptions, type SimOptions } from './options.js'
import { createOutputLengthSampler } from './output-length.js'
import { validateSimOptions } from './sim-config.js'

/** The vLLM release whose API and metrics the emulator follows; `GET /version` reports it. */
export const EMULATED_VLLM_VERSION = '0.11.0'

export interface SimHandle {
  /** `http://127.0.0.1:PORT` */
  url: string
  port: number
  close(): Promise<void>
  setFaults(f: Partial<FaultConfig>): void
  engineState(): EngineState
}

/** Not part of the shared contract: lets the CLI turn `dieAfterMs` into a process exit. */
export interface SimHooks {
  onDie?: () => void
  clock?: Clock
}

// vLLM names an error's `type` after the HTTP status's exception class and puts the status in `code`.
const ERROR_TYPES: Readonly<Record<number, string>> = {
  400: 'BadRequestError',
  404: 'NotFoundError',
  500: 'InternalServerError',
  503: 'ServiceUnavailableError',
}

interface VllmErrorBody {
  error: { message: string; type: string; param: string | null; code: number }
}

function vllmErrorBody(err: KvgateError): VllmErrorBody {
  return {
    error: { message: err.message, type: ERROR_TYPES[err.statusCode] ?? 'InternalServerError', param: err.param, code: err.statusCode },
  }
}

const nullableInteger = { type: ['integer', 'null'] } as const
const nullableBoolean = { type: ['boolean', 'null'] } as const
const streamOptionsSchema = {
  type: ['object', 'null'],
  properties: { include_usage: nullableBoolean, continuous_usage_stats: nullableBoolean },
} as const
const samplingProperties = {
  model: { type: ['string', 'null'] },
  stream: nullableBoolean,
  stream_options: streamOptionsSchema,
  max_tokens: nullableInteger,
  min_tokens: { type: 'integer', minimum: 0 },
  ignore_eos: { type: 'boolean' },
  // One choice per request: the emulator does not fork sequences.
  n: { type: ['integer', 'null'], minimum: 1, maximum: 1 },
  priority: { type: ['integer', 'null'] },
} as const

const chatSchema = {
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

const completionSchema = {
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

interface SamplingBody {
  model?: string | null
  stream?: boolean | null
  stream_options?: { include_usage?: boolean | null; continuous_usage_stats?: boolean | null } | null
  max_tokens?: number | null
  max_completion_tokens?: number | null
  min_tokens?: number
  ignore_eos?: boolean
  priority?: number | null
}
interface ChatBody extends SamplingBody {
  messages: ChatMessage[]
  add_generation_prompt?: boolean
}
interface CompletionBody extends SamplingBody {
  prompt: string | string[] | number[] | number[][]
}

type Kind = 'chat' | 'completion'

/** Build and start the emulator: engine, HTTP server, faults. */
export async function startSim(options: SimOptions = {}, hooks: SimHooks = {}): Promise<SimHandle> {
  const config = resolveSimOptions(validateSimOptions(options))
  const clock = hooks.clock ?? createScaledClock(config.speed)
  const tokenCounter = createWordPieceTokenCounter()
  let faults: FaultConfig = { ...config.faults }
  // Separate streams so that turning a fault on does not change the output lengths a seed gives.
  const lengthRandom = createSeededRandom(config.seed)
  const engineRandom = createSeededRandom(config.seed + 1)
  const faultRandom = createSeededRandom(config.seed + 2)
  const sampleLength = createOutputLengthSampler(config.outputLength, lengthRandom)

  // vLLM refuses to start when one max-length request cannot fit in the KV cache; the emulator caps the
  // context to what fits instead, so a small `--num-gpu-blocks` still serves.
  const kvCapacityTokens = (config.numGpuBlocks - 1) * config.blockSize
  const maxModelLen = Math.min(config.maxModelLen, kvCapacityTokens)
  const metrics = createSimMetrics(maxModelLen)

  const engine = createEngine({
    clock,
    random: engineRandom,
    tokenCounter,
    metrics,
    numGpuBlocks: config.numGpuBlocks,
    blockSize: config.blockSize,
    maxNumSeqs: config.maxNumSeqs,
    maxNumBatchedTokens: config.maxNumBatchedTokens,
    enablePrefixCaching: config.enablePrefixCaching,
    latency: config.latency,
    faults: () => faults,
    // Up to 25 ms of real timer lateness is caught up on, whatever the speed.
    maxCatchUpMs: Math.max(250, 25 * config.speed),
    // Arrivals in the same poll phase join one first step; an injected clock keeps its own ordering.
    ...(hooks.clock === undefined ? { defer: (fn: () => void) => setImmediate(fn) } : {}),
  })
  const startedWallSeconds = clock.wallNow() / 1000
  const startedWall = Math.floor(startedWallSeconds)
  const cacheConfig: Record<string, string> = {
    block_size: String(config.blockSize),
    cache_dtype: 'auto',
    calculate_kv_scales: 'False',
    cpu_offload_gb: '0',
    enable_prefix_caching: config.enablePrefixCaching ? 'True' : 'False',
    engine: '0',
    gpu_memory_utilization: '0.9',
    is_attention_free: 'False',
    num_cpu_blocks: '0',
    num_gpu_blocks: String(config.numGpuBlocks),
    num_gpu_blocks_override: 'None',
    prefix_caching_hash_algo: 'sha256',
    sliding_window: 'None',
    swap_space: '4',
  }

  const logger: pino.Logger | false = options.logger ?? false
  const app = Fastify({
    ...(logger === false ? { logger: false } : { loggerInstance: logger as FastifyBaseLogger }),
    // Closing must not wait for streams in flight: the emulator's close is also its "process died".
    forceCloseConnections: true,
    bodyLimit: 64 * 1024 * 1024, // bytes: long prompts as token-id arrays
  })

  app.setErrorHandler((error: unknown, _request, reply) => {
    let err: KvgateError
    if (error instanceof KvgateError) err = error
    else {
      const e = error as { statusCode?: number; message?: string; validation?: unknown; code?: string }
      err =
        e.validation !== undefined || (e.statusCode !== undefined && e.statusCode < 500)
          ? errors.invalidRequest([e.message ?? 'Bad request'], { cause: error })
          : errors.internal([e.message ?? String(error)], { cause: error })
    }
    void reply.status(err.statusCode).send(vllmErrorBody(err))
  })

  const checkModel = (model: string | null | undefined): void => {
    if (model != null && model !== config.model) {
      throw errors.notFound([`The model \`${model}\` does not exist.`], { param: 'model' })
    }
  }

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

  const handleGeneration = async (kind: Kind, body: ChatBody | CompletionBody, reply: FastifyReply): Promise<unknown> => {
    checkModel(body.model)
    // vLLM's request validators, in the same words.
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
    const targetTokens = body.ignore_eos === true ? maxTokens : Math.min(maxTokens, Math.max(minTokens, sampleLength()))
    if (faults.engineDead) throw errors.internal(['injected fault: the engine is dead (EngineDeadError)'])
    if (faults.errorRate > 0 && faultRandom.next() < faults.errorRate) {
      throw errors.internal(['injected fault: the engine failed this request'])
    }
    const id = (kind === 'chat' ? 'chatcmpl-' : 'cmpl-') + randomUUID().replace(/-/g, '')
    const created = Math.floor(clock.wallNow() / 1000)
    const request = { kind, id, created, promptIds: ids, promptTokens, maxTokens, targetTokens }
    if (body.stream === true) {
      const streamOptions = body.stream_options ?? null
      const halfway = Math.max(1, Math.floor(targetTokens / 2))
      const cutAfter = faults.streamCutRate > 0 && faultRandom.next() < faults.streamCutRate ? halfway : 0
      const errorAfter = faults.streamErrorRate > 0 && faultRandom.next() < faults.streamErrorRate ? halfway : 0
      reply.hijack()
      streamGeneration(reply.raw, request, {
        includeUsage: streamOptions !== null && streamOptions.include_usage !== false,
        continuousUsage: streamOptions !== null && streamOptions.continuous_usage_stats === true,
        cutAfter,
        errorAfter,
      })
      return reply
    }
    return completeGeneration(reply.raw, request)
  }

  interface GenerationRequest {
    kind: Kind
    id: string
    created: number
    promptIds: number[]
    promptTokens: number
    maxTokens: number
    targetTokens: number
  }

  const usageJson = (prompt: number, completion: number): string =>
    `{"prompt_tokens":${prompt},"total_tokens":${prompt + completion},"completion_tokens":${completion}}`

  const streamGeneration = (
    res: ServerResponse,
    req: GenerationRequest,
    stream: { includeUsage: boolean; continuousUsage: boolean; cutAfter: number; errorAfter: number },
  ): void => {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    })
    // Headers go out at once, as from vLLM: a queued request already has its 200 while it waits for a seat.
    res.flushHeaders()
    const chat = req.kind === 'chat'
    // Every chunk shares this head; building it once keeps a token's cost to one small string concat.
    const head = chat
      ? `data: {"id":"${req.id}","object":"chat.completion.chunk","created":${req.created},"model":${JSON.stringify(config.model)},"choices":[{"index":0,`
      : `data: {"id":"${req.id}","object":"text_completion","created":${req.created},"model":${JSON.stringify(config.model)},"choices":[`
    const usageTail = (completion: number): string =>
      stream.continuousUsage ? `,"usage":${usageJson(req.promptTokens, completion)}}\n\n` : '}\n\n'
    let done = false
    let engineRequest: EngineRequest | undefined
    res.on('close', () => {
      if (!done) engineRequest?.abort()
    })
    engineRequest = engine.add(
      { promptTokenIds: req.promptIds, maxTokens: req.maxTokens, targetTokens: req.targetTokens },
      {
        onToken(text, n) {
          const last = n >= req.targetTokens
          const finish = last ? `"${n >= req.maxTokens ? 'length' : 'stop'}"` : 'null'
          let chunk: string
          if (chat) {
            // vLLM sends the role chunk with the first output, then the content; the last token rides on
            // the finish chunk.
            if (n === 1) chunk = `${head}"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]${usageTail(0)}`
            else chunk = ''
            chunk += `${head}"delta":{"content":${JSON.stringify(text)}},"logprobs":null,"finish_reason":${finish}${last ? ',"stop_reason":null' : ''}}]${usageTail(n)}`
          } else {
            chunk = `${head}{"index":0,"text":${JSON.stringify(text)},"logprobs":null,"finish_reason":${finish},"stop_reason":null}]${usageTail(n)}`
          }
          if (stream.errorAfter > 0 && n >= stream.errorAfter && !last) {
            // Injected fault: the engine fails after the stream started; vLLM can no longer change the
            // status, so it sends an error event and ends the stream properly.
            done = true
            engineRequest?.abort('error')
            const error = errors.internal(['injected fault: the engine failed mid-stream'])
            res.end(`${chunk}data: ${JSON.stringify(vllmErrorBody(error))}\n\ndata: [DONE]\n\n`)
            return
          }
          if (stream.cutAfter > 0 && n >= stream.cutAfter && !last) {
            // Injected fault: the connection drops mid-stream, as when a server process dies. The chunk is
            // flushed first so the client sees exactly `cutAfter` tokens.
            done = true
            engineRequest?.abort('error')
            res.write(chunk, () => res.destroy())
            return
          }
          res.write(chunk)
        },
        onFinish() {
          done = true
          let tail = ''
          if (stream.includeUsage) {
            const usage = usageJson(req.promptTokens, engineRequest?.outputTokens() ?? 0)
            tail += chat
              ? `data: {"id":"${req.id}","object":"chat.completion.chunk","created":${req.created},"model":${JSON.stringify(config.model)},"choices":[],"usage":${usage}}\n\n`
              : `data: {"id":"${req.id}","object":"text_completion","created":${req.created},"model":${JSON.stringify(config.model)},"choices":[],"usage":${usage}}\n\n`
          }
          res.end(tail + 'data: [DONE]\n\n')
        },
      },
    )
  }

  const completeGeneration = (res: ServerResponse, req: GenerationRequest): Promise<unknown> =>
    new Promise((resolve) => {
      const pieces: string[] = []
      let done = false
      const engineRequest = engine.add(
        { promptTokenIds: req.promptIds, maxTokens: req.maxTokens, targetTokens: req.targetTokens },
        {
          onToken(text) {
            pieces.push(text)
          },
          onFinish(reason) {
            done = true
            const text = pieces.join('')
            const completion = engineRequest.outputTokens()
            const usage = {
              prompt_tokens: req.promptTokens,
              total_tokens: req.promptTokens + completion,
              completion_tokens: completion,
              prompt_tokens_details: null,
            }
            if (req.kind === 'chat') {
              resolve({
                id: req.id,
                object: 'chat.completion',
                created: req.created,
                model: config.model,
                choices: [
                  {
                    index: 0,
                    message: { role: 'assistant', content: text, refusal: null, annotations: null, audio: null, function_call: null, tool_calls: [], reasoning_content: null },
                    logprobs: null,
                    finish_reason: reason,
                    stop_reason: null,
                  },
                ],
                service_tier: null,
                system_fingerprint: null,
                usage,
                prompt_logprobs: null,
                kv_transfer_params: null,
              })
            } else {
              resolve({
                id: req.id,
                object: 'text_completion',
                created: req.created,
                model: config.model,
                choices: [{ index: 0, text, logprobs: null, finish_reason: reason, stop_reason: null, prompt_logprobs: null }],
                service_tier: null,
                system_fingerprint: null,
                usage,
                kv_transfer_params: null,
              })
            }
          },
        },
      )
      // The client hung up before the answer: vLLM aborts the request and frees its blocks.
      res.on('close', () => {
        if (!done) engineRequest.abort()
      })
    })

  app.post('/v1/chat/completions', { schema: { body: chatSchema } }, (request, reply) =>
    handleGeneration('chat', request.body as ChatBody, reply),
  )
  app.post('/v1/completions', { schema: { body: completionSchema } }, (request, reply) =>
    handleGeneration('completion', request.body as CompletionBody, reply),
  )

  // vLLM answers 200 with an empty body, or 503 once its engine has died.
  app.get('/health', async (_request, reply) => reply.status(faults.engineDead ? 503 : 200).send())
  app.get('/version', async () => ({ version: EMULATED_VLLM_VERSION }))
  app.get('/v1/models', async () => ({
    object: 'list',
    data: [
      {
        id: config.model,
        object: 'model',
        created: startedWall,
        owned_by: 'vllm',
        root: config.model,
        parent: null,
        max_model_len: maxModelLen,
        permission: [
          {
            id: `modelperm-${randomUUID().replace(/-/g, '')}`,
            object: 'model_permission',
            created: startedWall,
            allow_create_engine: false,
            allow_sampling: true,
            allow_logprobs: true,
            allow_search_indices: false,
            allow_view: true,
            allow_fine_tuning: false,
            organization: '*',
            group: null,
            is_blocking: false,
          },
        ],
      },
    ],
  }))

  app.post(
    '/tokenize',
    {
      schema: {
        body: {
          type: 'object',
          properties: {
            model: { type: ['string', 'null'] },
            prompt: { type: 'string' },
            messages: { type: 'array', items: { type: 'object', required: ['role'] } },
            add_generation_prompt: { type: 'boolean' },
          },
          anyOf: [{ required: ['prompt'] }, { required: ['messages'] }],
        },
      },
    },
    async (request) => {
      const body = request.body as { model?: string | null; prompt?: string; messages?: ChatMessage[]; add_generation_prompt?: boolean }
      checkModel(body.model)
      const text =
        body.messages !== undefined ? tokenCounter.renderChat(body.messages, body.add_generation_prompt ?? true) : (body.prompt ?? '')
      const tokens = tokenCounter.encode(text)
      return { count: tokens.length, max_model_len: maxModelLen, tokens, token_strs: null }
    },
  )
  app.post(
    '/detokenize',
    {
      schema: {
        body: {
          type: 'object',
          required: ['tokens'],
          properties: { model: { type: ['string', 'null'] }, tokens: { type: 'array', items: { type: 'integer', minimum: 0 } } },
        },
      },
    },
    async (request) => {
      const body = request.body as { model?: string | null; tokens: number[] }
      checkModel(body.model)
      return { prompt: tokenCounter.decode(body.tokens) }
    },
  )

  app.get('/metrics', async (_request, reply) => {
    if (faults.metricsDelayMs > 0) {
      await new Promise<void>((resolve) => clock.setTimeout(resolve, faults.metricsDelayMs))
    }
    if (faults.metricsUnavailable) throw errors.internal(['injected fault: /metrics is unavailable'])
    const state = engine.state()
    const text = renderMetrics(
      metrics,
      { running: state.running, waiting: state.waiting, kvCacheUsage: engine.usage() },
      { model: config.model, compat: config.metricsCompat, cacheConfig, createdSeconds: startedWallSeconds },
    )
    return reply.type('text/plain; version=0.0.4; charset=utf-8').send(text)
  })

  app.get('/sim/faults', async () => faults)
  app.post('/sim/faults', async (request) => {
    faults = { ...faults, ...parseFaults(request.body ?? {}) }
    return faults
  })
  // Engine state plus the process's memory, for benchmarks and debugging; `?gc=1` collects garbage first
  // when the process runs with --expose-gc, so heap figures compare across samples.
  app.get('/sim/state', async (request) => {
    const gc = (globalThis as { gc?: () => void }).gc
    if ((request.query as { gc?: string }).gc === '1' && gc !== undefined) gc()
    const { rss, heapUsed, external, arrayBuffers } = process.memoryUsage()
    return { ...engine.state(), memory: { rss, heapUsed, external, arrayBuffers } }
  })

  const address = await app.listen({ port: config.port, host: config.host })
  const port = new URL(address).port ? Number(new URL(address).port) : config.port
  let closing: Promise<void> | undefined
  const close = (): Promise<void> => {
    closing ??= (async () => {
      engine.close()
      await app.close()
    })()
    return closing
  }
  if (faults.dieAfterMs !== null) {
    const die = hooks.onDie ?? (() => void close())
    clock.setTimeout(die, faults.dieAfterMs).unref?.()
  }

  return {
    url: `http://${config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host}:${port}`,
    port,
    close,
    setFaults(f) {
      faults = { ...faults, ...parseFaults(f) }
    },
    engineState: () => engine.state(),
  }
}
