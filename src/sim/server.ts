import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyBaseLogger } from 'fastify'
import type pino from 'pino'
import { createScaledClock, createSeededRandom, type Clock } from '../core/index.js'
import { errors, KvgateError } from '../errors/index.js'
import { createWordPieceTokenCounter } from '../tokens/index.js'
import { createEngine, type EngineState } from './engine.js'
import { formatFloat } from './exposition.js'
import { BAD_GATEWAY_HTML, isInjectedFault } from './fault-effects.js'
import { parseFaults } from './faults.js'
import { createGenerationHandler } from './generation.js'
import { createMetricsEndpoint } from './metrics-endpoint.js'
import { createSimMetrics, type SimMetrics } from './metrics.js'
import { createModelCatalog } from './models.js'
import { checkSimOptionCombinations } from './option-checks.js'
import { type FaultConfig, type ResolvedSimOptions, resolveSimOptions, type SimOptions } from './options.js'
import { createOutputLengthSampler } from './output-length.js'
import { validateSimOptions } from './sim-config.js'
import { createSimLogController } from './sim-logging.js'
import {
  type ChatBody,
  chatRequestSchema,
  type CompletionBody,
  completionRequestSchema,
  type DetokenizeBody,
  detokenizeRequestSchema,
  EMULATED_VLLM_VERSION,
  type TokenizeBody,
  tokenizeRequestSchema,
  vllmErrorBody,
} from './vllm-protocol.js'

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

// The OpenAI API routes a broken proxy in front of vLLM would answer for (faults.badGatewayHtmlRate).
const API_ROUTES = new Set([
  '/v1/chat/completions',
  '/v1/completions',
  '/v1/models',
  '/tokenize',
  '/detokenize',
  '/version',
])

/** `vllm:cache_config_info`'s labels, as vLLM's `CacheConfig.metrics_info()` writes them (Python's str()). */
function cacheConfigInfo(config: ResolvedSimOptions): Record<string, string> {
  const offload = config.offload
  return {
    block_size: String(config.blockSize),
    cache_dtype: 'auto',
    calculate_kv_scales: 'False',
    cpu_offload_gb: '0',
    enable_prefix_caching: config.enablePrefixCaching ? 'True' : 'False',
    engine: '0',
    gpu_memory_utilization: formatFloat(config.gpuMemoryUtilization),
    is_attention_free: 'False',
    kv_offloading_backend: offload?.backend ?? 'None',
    kv_offloading_size: offload?.sizeGiB == null ? 'None' : formatFloat(offload.sizeGiB),
    // vLLM leaves this "None" with the OffloadingConnector (its CPU blocks live in the connector); the
    // emulator reports the tier's size here so a reader sees it without parsing the connector's config.
    num_cpu_blocks: String(offload?.numCpuBlocks ?? 0),
    num_gpu_blocks: String(config.numGpuBlocks),
    num_gpu_blocks_override: config.numGpuBlocksOverride === null ? 'None' : String(config.numGpuBlocksOverride),
    prefix_caching_hash_algo: 'sha256',
    sliding_window: 'None',
    swap_space: '4',
  }
}

/** Build and start the emulator: engine, HTTP server, faults. */
export async function startSim(options: SimOptions = {}, hooks: SimHooks = {}): Promise<SimHandle> {
  const config = resolveSimOptions(checkSimOptionCombinations(validateSimOptions(options)))
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
  const catalog = createModelCatalog(config)
  const metricsByModel = new Map<string, SimMetrics>(
    catalog.metricsNames.map((name) => [name, createSimMetrics(maxModelLen)]),
  )
  const metricsOf = (name: string): SimMetrics => metricsByModel.get(name)!
  const engineMetrics = metricsOf(catalog.primaryName)

  const engine = createEngine({
    clock,
    random: engineRandom,
    tokenCounter,
    metrics: engineMetrics,
    numGpuBlocks: config.numGpuBlocks,
    blockSize: config.blockSize,
    maxNumSeqs: config.maxNumSeqs,
    maxNumBatchedTokens: config.maxNumBatchedTokens,
    enablePrefixCaching: config.enablePrefixCaching,
    latency: config.latency,
    faults: () => faults,
    offload: config.offload,
    // Up to 25 ms of real timer lateness is caught up on, whatever the speed.
    maxCatchUpMs: Math.max(250, 25 * config.speed),
    // Arrivals in the same poll phase join one first step; an injected clock keeps its own ordering.
    ...(hooks.clock === undefined ? { defer: (fn: () => void) => setImmediate(fn) } : {}),
  })
  const startedWallSeconds = clock.wallNow() / 1000
  const startedWall = Math.floor(startedWallSeconds)

  const logger: pino.Logger | false = options.logger ?? false
  if (logger !== false && maxModelLen < config.maxModelLen) {
    logger.warn(
      { maxModelLen: config.maxModelLen, kvCapacityTokens },
      `max_model_len capped to ${maxModelLen} tokens: the KV cache (${config.numGpuBlocks} blocks × ${config.blockSize}) holds no more`,
    )
  }
  const app = Fastify({
    ...(logger === false ? { logger: false } : { loggerInstance: logger as FastifyBaseLogger }),
    // Quiet by default: one line per request at debug, none for /metrics and /health polls.
    logController: createSimLogController(),
    // Closing must not wait for streams in flight: the emulator's close is also its "process died".
    forceCloseConnections: true,
    bodyLimit: 64 * 1024 * 1024, // bytes: long prompts as token-id arrays
  })

  app.setErrorHandler((error: unknown, request, reply) => {
    let err: KvgateError
    if (error instanceof KvgateError) err = error
    else {
      const e = error as { statusCode?: number; message?: string; validation?: unknown; code?: string }
      err =
        e.validation !== undefined || (e.statusCode !== undefined && e.statusCode < 500)
          ? errors.invalidRequest([e.message ?? 'Bad request'], { cause: error })
          : errors.internal([e.message ?? String(error)], { cause: error })
    }
    // A fault the test asked for is not news; anything else failing inside the emulator is.
    if (err.statusCode >= 500 && !isInjectedFault(err)) request.log.error({ err: error }, err.message)
    void reply.status(err.statusCode).send(vllmErrorBody(err))
  })

  app.addHook('onRequest', async (request, reply) => {
    const rate = faults.badGatewayHtmlRate
    if (rate === 0 || !API_ROUTES.has(request.routeOptions.url ?? '') || faultRandom.next() >= rate) return
    // Answered here, before the body is read: the request never reaches the emulated vLLM.
    return reply.status(502).type('text/html').send(BAD_GATEWAY_HTML)
  })

  const handleGeneration = createGenerationHandler({
    catalog,
    metricsOf,
    maxModelLen,
    engine,
    tokenCounter,
    clock,
    sampleLength,
    outputLength: config.outputLength,
    faultRandom,
    faults: () => faults,
  })

  app.post('/v1/chat/completions', { schema: { body: chatRequestSchema } }, (request, reply) =>
    handleGeneration('chat', request.body as ChatBody, reply),
  )
  app.post('/v1/completions', { schema: { body: completionRequestSchema } }, (request, reply) =>
    handleGeneration('completion', request.body as CompletionBody, reply),
  )

  // vLLM answers 200 with an empty body, or 503 once its engine has died.
  app.get('/health', async (_request, reply) => reply.status(faults.engineDead ? 503 : 200).send())
  app.get('/version', async () => ({ version: EMULATED_VLLM_VERSION }))
  const permissionId = `modelperm-${randomUUID().replace(/-/g, '')}`
  app.get('/v1/models', async () => catalog.list(maxModelLen, startedWall, permissionId))

  app.post('/tokenize', { schema: { body: tokenizeRequestSchema } }, async (request) => {
    const body = request.body as TokenizeBody
    catalog.resolve(body.model)
    const text =
      body.messages !== undefined
        ? tokenCounter.renderChat(body.messages, body.add_generation_prompt ?? true)
        : (body.prompt ?? '')
    const tokens = tokenCounter.encode(text)
    return { count: tokens.length, max_model_len: maxModelLen, tokens, token_strs: null }
  })
  app.post('/detokenize', { schema: { body: detokenizeRequestSchema } }, async (request) => {
    const body = request.body as DetokenizeBody
    catalog.resolve(body.model)
    return { prompt: tokenCounter.decode(body.tokens) }
  })

  const metricsEndpoint = createMetricsEndpoint({
    engine,
    clock,
    models: catalog.metricsNames.map((name) => [name, metricsOf(name)] as const),
    compat: config.metricsCompat,
    cacheConfig: cacheConfigInfo(config),
    createdSeconds: startedWallSeconds,
    offloading: config.offload !== null,
    faults: () => faults,
  })
  app.get('/metrics', async (_request, reply) => metricsEndpoint(reply))

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
