import { request } from 'undici'
import { parseConfig } from '../../src/config/index.js'
import { createSeededRandom, type Clock } from '../../src/core/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { startSim, type SimHandle, type SimOptions } from '../../src/sim/index.js'
import { buildText } from '../../src/tokens/index.js'
import { until } from '../support/poll.js'

/** Several gateways in front of the same emulator, each with its own config's `state` section. */
export interface Replicas {
  sim: SimHandle
  gateways: Gateway[]
  urls: string[]
  close(): Promise<void>
}

export async function startReplicas(options: {
  count: number
  state: Record<string, unknown>
  sim?: SimOptions
  config?: Record<string, unknown>
  /** One clock for every gateway (a scaled one compresses the quota minute for all of them alike). */
  clock?: Clock
  /** Put something between the gateways and the emulator (a recorder): the URL the gateways use. */
  upstream?: (simUrl: string) => Promise<string>
}): Promise<Replicas> {
  const sim = await startSim({ speed: 20, numGpuBlocks: 256, seed: 1, logger: false, ...options.sim })
  const backendUrl = options.upstream === undefined ? sim.url : await options.upstream(sim.url)
  const gateways: Gateway[] = []
  const urls: string[] = []
  for (let i = 0; i < options.count; i++) {
    const config = parseConfig({
      ...options.config,
      backends: [{ url: backendUrl, name: 'sim0' }],
      metricsPoll: { intervalMs: 20, staleAfterMs: 2_000, ...(options.config?.['metricsPoll'] as object | undefined) },
      state: { replicaId: `gw${i}`, ...options.state },
    })
    const gateway = await createGateway({
      config,
      logger: false,
      ...(options.clock === undefined ? {} : { clock: options.clock }),
    })
    gateways.push(gateway)
    urls.push(await gateway.listen({ port: 0, host: '127.0.0.1' }))
  }
  await until(() => (gateways.every((g) => g.backends()[0]?.usable === true) ? true : undefined))
  return {
    sim,
    gateways,
    urls,
    async close() {
      await Promise.all(gateways.map((g) => g.close()))
      await sim.close()
    },
  }
}

let prompts = 0

export interface StreamResult {
  status: number
  /** When the answer's headers arrived (the request had been admitted), on `clock` if given, else Date.now(). */
  answeredAtMs: number
  contentChunks: number
  done: boolean
  reason: string | undefined
}

/** One streaming chat request of 500 prompt tokens (all different: no shared prefix) and exactly `outputTokens`. */
export async function streamOne(
  baseUrl: string,
  {
    outputTokens = 200,
    user = 'u',
    promptTokens = 500,
    clock,
  }: { outputTokens?: number; user?: string; promptTokens?: number; clock?: Clock } = {},
): Promise<StreamResult> {
  const response = await request(`${baseUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-user-id': user },
    body: JSON.stringify({
      model: 'kvgate-sim',
      // Two tokens of the chat template on top of the content.
      messages: [{ role: 'user', content: buildText(promptTokens - 2, createSeededRandom(++prompts)) }],
      max_tokens: outputTokens,
      ignore_eos: true,
      stream: true,
    }),
  })
  const answeredAtMs = clock?.wallNow() ?? Date.now()
  const text = await response.body.text()
  const reason = response.headers['x-kvgate-reject-reason']
  return {
    status: response.statusCode,
    answeredAtMs,
    contentChunks: (text.match(/"content":"[^"]/g) ?? []).length,
    done: text.includes('data: [DONE]'),
    reason: Array.isArray(reason) ? reason[0] : reason,
  }
}

export async function preemptions(sim: SimHandle): Promise<number> {
  const text = await (await request(`${sim.url}/metrics`)).body.text()
  const line = text.split('\n').find((l) => l.startsWith('vllm:num_preemptions_total'))
  return Number(line?.split(' ').at(-1))
}

/** Open `n` keep-alive connections to each URL first, so a burst arrives at once rather than at TCP's pace. */
export async function warmConnections(urls: readonly string[], n: number): Promise<void> {
  await Promise.all(
    urls.flatMap((url) => Array.from({ length: n }, async () => (await request(`${url}/health`)).body.dump())),
  )
}
