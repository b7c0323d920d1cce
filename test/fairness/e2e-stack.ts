import { setMaxListeners } from 'node:events'
import { request } from 'undici'
import { parseConfig } from '../../src/config/index.js'
import { createScaledClock, createSseParser, createSystemClock, type Clock } from '../../src/core/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { startSim, type SimHandle } from '../../src/sim/index.js'

/**
 * The real gateway in front of the real emulator over loopback, with the client side of a fairness run:
 * per-user closed-loop or Poisson streaming clients identified by `x-user-id`, measuring each user's
 * weighted service as it streams (prompt counted at the first token, each content chunk as one completion
 * token) and each request's TTFT. Both servers share one clock when a test compresses time.
 */
export const E2E = Object.freeze({
  numGpuBlocks: 64, // × 16 = 1,024 tokens of KV: about 5 requests of 200 tokens at once
  blockSize: 16,
  // A slow emulated GPU (40 ms per decode step) run fast: few, long-lived requests keep the KV the bottleneck
  // rather than the test process's CPU.
  latency: { stepFixedMs: 40 },
  promptContentTokens: 98, // + role marker + generation prompt = 100 prompt tokens
  promptTokens: 100,
  outputTokens: 100,
})

export interface E2eStack {
  readonly url: string
  /** The admin listener (`/metrics`). */
  readonly adminUrl: string
  readonly clock: Clock
  readonly sim: SimHandle
  readonly gateway: Gateway
  close(): Promise<void>
}

export async function startE2eStack(options: {
  speed: number
  policy: string
  policyOptions?: Record<string, unknown>
  users: readonly Record<string, unknown>[]
  /** Share the emulator's compressed timeline with the gateway (quotas per minute); else real time. */
  scaledGatewayClock?: boolean
  deadlineMs?: number
}): Promise<E2eStack> {
  const sim = await startSim({
    speed: options.speed,
    numGpuBlocks: E2E.numGpuBlocks,
    blockSize: E2E.blockSize,
    latency: E2E.latency,
    enablePrefixCaching: false, // identical prompts must not share KV: each request costs its full prompt
    logger: false,
  })
  // The emulator keeps its own scaled clock; a second one at the same speed measures the same timeline.
  const clock = options.scaledGatewayClock ? createScaledClock(options.speed) : createSystemClock()
  const timeScale = options.scaledGatewayClock ? options.speed : 1
  const config = parseConfig({
    backends: [{ url: sim.url, name: 'sim0' }],
    // Poll every 100 ms of real time whatever the speed (the poller runs on the gateway's clock).
    metricsPoll: { intervalMs: 100 * timeScale, timeoutMs: 2_000 * timeScale, staleAfterMs: 5_000 * timeScale },
    healthCheck: { intervalMs: 2_000 * timeScale, timeoutMs: 2_000 * timeScale },
    admission: {
      defaultDeadlineMs: options.deadlineMs ?? 60_000 * timeScale,
      maxDeadlineMs: Math.max(120_000, options.deadlineMs ?? 60_000 * timeScale),
      maxQueueLength: 10_000,
      earlyReject: false,
      deadlineTickMs: 50 * timeScale,
    },
    users: options.users,
    policy: { name: options.policy, options: options.policyOptions ?? {} },
    telemetry: { logLevel: 'warn' },
  })
  const gateway = await createGateway({ config, clock, logger: false })
  const url = await gateway.listen({ port: 0, host: '127.0.0.1' })
  const deadline = Date.now() + 10_000
  while (gateway.backends()[0]?.usable !== true) {
    if (Date.now() > deadline) throw new Error('backend never became usable')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return {
    url,
    adminUrl: gateway.adminUrl(),
    clock,
    sim,
    gateway,
    async close() {
      await gateway.close()
      await sim.close()
    },
  }
}

export interface ClientRecord {
  readonly user: string
  readonly sentMs: number
  /** On the stack's clock; undefined if no token came (429, abort). */
  firstTokenMs: number | undefined
  lastTokenMs: number | undefined
  tokens: number
  status: number
}

/** Per-user load and measurements. */
export class FairnessClients {
  readonly service = new Map<string, number>()
  readonly records: ClientRecord[] = []
  readonly samples: { atMs: number; service: Map<string, number> }[] = []
  readonly #stack: E2eStack
  readonly #weights: Map<string, number>
  readonly #abort = new AbortController()
  readonly #running = new Set<Promise<void>>()
  readonly #wIn: number
  readonly #wOut: number
  #stopped = false
  /** When `stop()` was called, on the stack's clock. */
  stoppedAtMs: number | undefined

  constructor(stack: E2eStack, weights: Record<string, number>, wIn = 1, wOut = 2) {
    // One signal aborts every outstanding request at the end; each request adds a listener to it.
    setMaxListeners(0, this.#abort.signal)
    this.#stack = stack
    this.#weights = new Map(Object.entries(weights))
    for (const user of this.#weights.keys()) this.service.set(user, 0)
    this.#wIn = wIn
    this.#wOut = wOut
  }

  /** Keep `concurrency` requests of `user` outstanding until stopped. */
  closedLoop(user: string, concurrency: number): void {
    for (let i = 0; i < concurrency; i++) {
      const loop = async (): Promise<void> => {
        while (!this.#stopped) await this.#one(user)
      }
      this.#track(loop())
    }
  }

  /** Poisson arrivals at `ratePerSecond` (real seconds) until stopped; `random` in [0, 1). */
  poisson(user: string, ratePerSecond: number, random: () => number): void {
    const next = (): void => {
      if (this.#stopped) return
      this.#track(this.#one(user))
      setTimeout(next, (-Math.log(1 - random()) / ratePerSecond) * 1_000)
    }
    setTimeout(next, (-Math.log(1 - random()) / ratePerSecond) * 1_000)
  }

  /** One request of `user` every `intervalMs` real ms until stopped (an open loop that never bunches up). */
  periodic(user: string, intervalMs: number): void {
    const next = (): void => {
      if (this.#stopped) return
      this.#track(this.#one(user))
      setTimeout(next, intervalMs)
    }
    next()
  }

  /** Record every user's service every `everyMs` real ms until stopped. */
  sample(everyMs: number): void {
    const tick = (): void => {
      if (this.#stopped) return
      this.samples.push({ atMs: this.#stack.clock.now(), service: new Map(this.service) })
      setTimeout(tick, everyMs)
    }
    tick()
  }

  async stop(): Promise<void> {
    this.#stopped = true
    this.stoppedAtMs = this.#stack.clock.now()
    this.samples.push({ atMs: this.#stack.clock.now(), service: new Map(this.service) })
    this.#abort.abort()
    await Promise.allSettled([...this.#running])
  }

  #track(p: Promise<void>): void {
    this.#running.add(p)
    void p.finally(() => this.#running.delete(p))
  }

  async #one(user: string): Promise<void> {
    const clock = this.#stack.clock
    const weight = this.#weights.get(user) ?? 1
    const record: ClientRecord = {
      user,
      sentMs: clock.now(),
      firstTokenMs: undefined,
      lastTokenMs: undefined,
      tokens: 0,
      status: 0,
    }
    this.records.push(record)
    try {
      const response = await request(`${this.#stack.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-user-id': user },
        body: JSON.stringify({
          model: 'kvgate-sim',
          messages: [{ role: 'user', content: ' the'.repeat(E2E.promptContentTokens) }],
          max_tokens: E2E.outputTokens,
          ignore_eos: true,
          stream: true,
        }),
        signal: this.#abort.signal,
      })
      record.status = response.statusCode
      if (response.statusCode !== 200) {
        await response.body.text()
        // A 429 is an answer, not service; back off a little so a closed loop does not spin.
        if (!this.#stopped) await new Promise((resolve) => setTimeout(resolve, 20))
        return
      }
      const parser = createSseParser((data) => {
        // Content chunks carry one token each; the role chunk's content is "".
        if (!/"content":"[^"]/.test(data)) return
        if (record.firstTokenMs === undefined) {
          record.firstTokenMs = clock.now()
          this.#add(user, (this.#wIn * E2E.promptTokens) / weight)
        }
        record.tokens++
        record.lastTokenMs = clock.now()
        this.#add(user, this.#wOut / weight)
      })
      for await (const chunk of response.body) parser.push(chunk as Uint8Array)
      parser.end()
    } catch {
      // Aborted at the end of the run, or the stack closed: the request simply stops counting.
    }
  }

  #add(user: string, amount: number): void {
    this.service.set(user, (this.service.get(user) ?? 0) + amount)
  }
}
