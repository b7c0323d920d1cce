import { Agent, request, type Dispatcher } from 'undici'
import type { BackendConfig, KvgateConfig } from '../config/index.js'
import { clockTimeoutSignal, type Clock, type TimerHandle } from '../core/index.js'
import { readVllmMetrics, type VllmMetrics } from './vllm-metrics.js'

/** What admission needs of a backend: how much KV it has, how much vLLM says is used, and whether to use it. */
export interface BackendCapacity {
  readonly id: string
  readonly capacityTokens: number
  readonly usedTokens: number
  readonly usable: boolean
  /** Requests in the backend's own waiting queue at the last poll (`vllm:num_requests_waiting`), if known. */
  readonly waiting?: number
}

/**
 * Ways a backend can be wrong that take it out of admission (counted in `kvgate_backend_faults_total`): its
 * page lies about usage or capacity, is larger than `metricsPoll.maxBodyBytes`, or its engine's `/health`
 * fails while `/metrics` still answers.
 */
export const BACKEND_FAULTS = [
  'usage_out_of_range',
  'capacity_inconsistent',
  'capacity_mismatch',
  'capacity_above_ceiling',
  'metrics_too_large',
  'health_failed',
] as const
export type BackendFault = (typeof BACKEND_FAULTS)[number]

/** Everything the gateway knows about a backend, for metrics, /health and logs. */
export interface BackendState extends BackendCapacity {
  readonly url: string
  /** The last poll succeeded. */
  readonly up: boolean
  readonly kvUsageRatio: number
  /** Milliseconds since the last successful poll; Infinity before the first. */
  readonly metricsAgeMs: number
  readonly pollErrors: number
  readonly running: number
  readonly waiting: number
  /** Tokens per KV block from `vllm:cache_config_info`; undefined until a poll has read it. */
  readonly blockSize: number | undefined
  readonly lastError: string | undefined
  /** The last `/health` check passed; null when none finished yet (or health checks are off). */
  readonly healthy: boolean | null
  /** How many times each fault was seen (polls refused, health checks failed). */
  readonly faults: Readonly<Record<BackendFault, number>>
}

/**
 * The ledger's side of a poll (see src/ledger): a mark taken before the request is sent, completed once the
 * answer is parsed, so reservations admitted before the mark can be treated as visible in vLLM's usage.
 */
export interface PollReconciler<Mark = unknown> {
  /** A shared ledger's mark is a promise (its snapshot is taken elsewhere): the poll is sent once it settles. */
  beginPoll(backendId: string): Mark | Promise<Mark>
  completePoll(mark: Mark): void
}

export interface BackendPoolOptions {
  backends: readonly BackendConfig[]
  poll: KvgateConfig['metricsPoll']
  clock: Clock
  reconciler?: PollReconciler
  /**
   * Each backend's own `GET /health`, every `intervalMs`: a backend is usable only while its last check
   * passed. Without it (tests of the poller alone) health is not checked.
   */
  health?: { readonly intervalMs: number; readonly timeoutMs: number }
  /** After each round of polls (all backends settled): run the dispatcher, tick the policy. */
  onPollRound?: () => void
  /** A backend went from usable to not, or back. */
  onUsableChange?: (backend: BackendState) => void
  /**
   * Once per backend, when its first poll (and, if it succeeded, its first health check) settled: whether
   * it was reachable and believable, so a wrong URL is said at start-up rather than only counted.
   */
  onFirstResult?: (backend: BackendState) => void
}

export interface BackendPool {
  start(): void
  /** Poll every backend once now; resolves when all answered or failed. */
  pollOnce(): Promise<void>
  capacities(): BackendCapacity[]
  states(): BackendState[]
  /** Usable backend with the most free KV for routes that skip admission; undefined when none is usable. */
  pickForPassthrough(): BackendState | undefined
  /**
   * Check this backend's health now (an admitted request just failed on it), unless a check is in flight:
   * a dead engine leaves admission after one failure, not at the next interval.
   */
  checkHealthSoon(backendId: string): void
  /** Tokens (prompt + completion) the backends finished per minute, over the last RATE_WINDOW_MS. */
  servedTokensPerMinute(): number
  /** The undici dispatcher shared by polls and forwarding (keep-alive connections to the backends). */
  readonly dispatcher: Dispatcher
  close(): Promise<void>
}

const RATE_WINDOW_MS = 10_000 // 10 seconds of counter samples smooth the served-tokens rate
const KEEP_ALIVE_MS = 60_000 // 60 seconds: polls every 100 ms keep the connection warm anyway

interface CounterSample {
  atMs: number
  total: number
}

interface Backend {
  config: BackendConfig
  metrics: VllmMetrics | undefined
  lastSuccessMs: number | undefined
  failing: boolean
  pollErrors: number
  lastError: string | undefined
  inFlight: Promise<void> | undefined
  counters: CounterSample[]
  wasUsable: boolean
  healthy: boolean | null
  healthError: string | undefined
  healthInFlight: Promise<void> | undefined
  faults: Record<BackendFault, number>
  polled: boolean
  firstReported: boolean
}

const noFaults = (): Record<BackendFault, number> =>
  Object.fromEntries(BACKEND_FAULTS.map((fault) => [fault, 0])) as Record<BackendFault, number>

// A usage this far outside [0, 1] is a lie, not rounding (vLLM computes 1 − free / (blocks − 1)).
const USAGE_EPSILON = 1e-9
const HEALTH_BODY_MAX_BYTES = 4 * 1024 // vLLM's /health body is empty; more is not read

/**
 * The vLLM backends behind the gateway: polls each /metrics every `intervalMs` and turns it into capacity and
 * usage. A backend whose last poll failed, or whose last good poll is older than `staleAfterMs`, is not usable:
 * admitting against stale usage is how a burst overfills the KV cache.
 *
 * The upstream is semi-trusted, so a poll is also failed when its figures cannot be true: a usage outside
 * [0, 1] (NaN and ±Inf included: read as 0 it would look empty and be over-admitted), a capacity that
 * `cache_config_info` contradicts itself on, that exceeds `maxCapacityTokens`, or that is below a configured
 * `capacityTokens` (the operator's figure would over-admit), or a page above `maxBodyBytes` (not read
 * further). And a backend whose own `/health` fails is out of admission even while its /metrics answers.
 */
export function createBackendPool(options: BackendPoolOptions): BackendPool {
  const { clock, poll } = options
  const agent = new Agent({
    keepAliveTimeout: KEEP_ALIVE_MS,
    // No timers of undici's own: polls and forwarded requests are bounded on the injected clock (a poll by
    // timeoutMs below, a forwarded request by forwarding.* in src/proxy).
    headersTimeout: 0,
    bodyTimeout: 0,
  })
  const backends: Backend[] = options.backends.map((config) => ({
    config,
    metrics: undefined,
    lastSuccessMs: undefined,
    failing: false,
    pollErrors: 0,
    lastError: undefined,
    inFlight: undefined,
    counters: [],
    wasUsable: false,
    healthy: null,
    healthError: undefined,
    healthInFlight: undefined,
    faults: noFaults(),
    polled: false,
    firstReported: false,
  }))
  let healthTimer: TimerHandle | undefined
  let timer: TimerHandle | undefined
  let closed = false

  const capacityOf = (backend: Backend): number => backend.config.capacityTokens ?? backend.metrics?.capacityTokens ?? 0

  const stateOf = (backend: Backend): BackendState => {
    const nowMs = clock.now()
    const capacityTokens = capacityOf(backend)
    // Within USAGE_EPSILON of [0, 1] (anything further was refused): clamped.
    const kvUsageRatio = Math.min(1, Math.max(0, backend.metrics?.kvUsageRatio ?? 0))
    const metricsAgeMs = backend.lastSuccessMs === undefined ? Infinity : nowMs - backend.lastSuccessMs
    const healthOk = options.health === undefined || backend.healthy === true
    const usable = !backend.failing && healthOk && capacityTokens > 0 && metricsAgeMs <= poll.staleAfterMs && !closed
    return {
      id: backend.config.name,
      url: backend.config.url,
      capacityTokens,
      usedTokens: Math.round(kvUsageRatio * capacityTokens),
      usable,
      up: backend.lastSuccessMs !== undefined && !backend.failing,
      kvUsageRatio,
      metricsAgeMs,
      pollErrors: backend.pollErrors,
      running: backend.metrics?.running ?? 0,
      waiting: backend.metrics?.waiting ?? 0,
      // A failing poll is the first thing to fix (a wrong URL fails both); else a failed health check.
      lastError: !backend.failing && backend.healthy === false ? backend.healthError : backend.lastError,
      healthy: backend.healthy,
      faults: { ...backend.faults },
      blockSize: backend.metrics?.blockSize,
    }
  }

  const noteUsable = (backend: Backend): void => {
    if (closed) return // every backend turns unusable at close; that is not news
    const state = stateOf(backend)
    if (state.usable !== backend.wasUsable) {
      backend.wasUsable = state.usable
      options.onUsableChange?.(state)
    }
  }

  const reportFirst = (backend: Backend): void => {
    if (closed || backend.firstReported || !backend.polled) return
    // A failed poll explains itself; a good one waits for the health check, which decides usability too.
    if (!backend.failing && options.health !== undefined && backend.healthy === null) return
    backend.firstReported = true
    options.onFirstResult?.(stateOf(backend))
  }

  const fail = (backend: Backend, reason: string, fault?: BackendFault): void => {
    backend.failing = true
    backend.pollErrors++
    backend.lastError = reason
    if (fault !== undefined) backend.faults[fault]++
  }

  /** The body, or undefined once it passes `maxBytes` (the rest is not read). */
  const readLimited = async (body: AsyncIterable<Uint8Array>, maxBytes: number): Promise<string | undefined> => {
    const decoder = new TextDecoder()
    let text = ''
    let bytes = 0
    for await (const chunk of body) {
      bytes += chunk.length
      if (bytes > maxBytes) return undefined
      text += decoder.decode(chunk, { stream: true })
    }
    return text + decoder.decode()
  }

  /** Why this page's figures cannot be believed, with the fault it counts as; undefined when they can. */
  const distrust = (backend: Backend, metrics: VllmMetrics): [string, BackendFault] | undefined => {
    const usage = metrics.kvUsageRatio
    if (!(usage >= -USAGE_EPSILON && usage <= 1 + USAGE_EPSILON)) {
      return [`vllm:kv_cache_usage_perc is ${usage}, outside [0, 1]`, 'usage_out_of_range']
    }
    if (metrics.capacityProblem !== undefined) return [metrics.capacityProblem, 'capacity_inconsistent']
    const reported = metrics.capacityTokens
    const configured = backend.config.capacityTokens
    for (const [what, tokens] of [
      ['reported', reported],
      ['configured', configured],
    ] as const) {
      if (tokens !== undefined && tokens !== null && tokens > poll.maxCapacityTokens) {
        return [
          `${what} KV capacity ${tokens} tokens exceeds metricsPoll.maxCapacityTokens (${poll.maxCapacityTokens})`,
          'capacity_above_ceiling',
        ]
      }
    }
    if (configured !== null && reported !== undefined && configured > reported) {
      return [
        `capacityTokens ${configured} exceeds the ${reported} tokens vllm:cache_config_info reports`,
        'capacity_mismatch',
      ]
    }
    return undefined
  }

  const pollBackend = async (backend: Backend): Promise<void> => {
    const mark = await options.reconciler?.beginPoll(backend.config.name)
    // On the injected clock (not undici's timers or AbortSignal.timeout): a stepped clock drives it in tests,
    // and a loaded machine does not fail polls that the clock says are on time.
    const timeout = clockTimeoutSignal(clock, poll.timeoutMs, () => new Error(`no answer within ${poll.timeoutMs} ms`))
    try {
      const response = await request(`${backend.config.url}/metrics`, { dispatcher: agent, signal: timeout.signal })
      if (response.statusCode !== 200) {
        await response.body.dump()
        return fail(backend, `/metrics answered ${response.statusCode}`)
      }
      const text = await readLimited(response.body, poll.maxBodyBytes)
      if (text === undefined) {
        response.body.destroy()
        return fail(
          backend,
          `/metrics is larger than metricsPoll.maxBodyBytes (${poll.maxBodyBytes})`,
          'metrics_too_large',
        )
      }
      const metrics = readVllmMetrics(text)
      if (metrics === undefined) return fail(backend, '/metrics has no vllm:kv_cache_usage_perc')
      const lie = distrust(backend, metrics)
      if (lie !== undefined) return fail(backend, lie[0], lie[1])
      backend.metrics = metrics
      backend.lastSuccessMs = clock.now()
      backend.failing = false
      // Up but unusable without a capacity: say why, so the operator knows which setting is missing.
      backend.lastError =
        capacityOf(backend) > 0
          ? undefined
          : 'KV capacity unknown: no vllm:cache_config_info; set backends[].capacityTokens'
      const total = metrics.promptTokensTotal + metrics.generationTokensTotal
      const last = backend.counters.at(-1)
      // A counter that went down means vLLM restarted: the old samples describe another process.
      if (last !== undefined && total < last.total) backend.counters = []
      backend.counters.push({ atMs: backend.lastSuccessMs, total })
      while (backend.counters.length > 2 && backend.lastSuccessMs - (backend.counters[0]?.atMs ?? 0) > RATE_WINDOW_MS) {
        backend.counters.shift()
      }
      if (mark !== undefined) options.reconciler?.completePoll(mark)
    } catch (err) {
      fail(backend, (err as Error).message)
    } finally {
      timeout.clear()
      backend.polled = true
      noteUsable(backend)
      reportFirst(backend)
    }
  }

  const checkHealth = async (backend: Backend): Promise<void> => {
    const health = options.health
    if (health === undefined) return
    const timeout = clockTimeoutSignal(
      clock,
      health.timeoutMs,
      () => new Error(`no answer within ${health.timeoutMs} ms`),
    )
    let healthy = false
    let reason = ''
    try {
      const response = await request(`${backend.config.url}/health`, { dispatcher: agent, signal: timeout.signal })
      await readLimited(response.body, HEALTH_BODY_MAX_BYTES)
      healthy = response.statusCode === 200
      reason = `/health answered ${response.statusCode}`
    } catch (err) {
      reason = `/health failed: ${(err as Error).message}`
    } finally {
      timeout.clear()
    }
    if (closed) return
    backend.healthy = healthy
    backend.healthError = healthy ? undefined : `engine not healthy: ${reason}`
    if (!healthy) backend.faults.health_failed++
    noteUsable(backend)
    reportFirst(backend)
  }

  const checkHealthOf = (backend: Backend): Promise<void> => {
    backend.healthInFlight ??= checkHealth(backend).finally(() => {
      backend.healthInFlight = undefined
    })
    return backend.healthInFlight
  }

  const pollOnce = async (): Promise<void> => {
    await Promise.all(
      backends.map((backend) => {
        // A slow backend keeps its one poll in flight rather than piling up requests behind it.
        backend.inFlight ??= pollBackend(backend).finally(() => {
          backend.inFlight = undefined
        })
        return backend.inFlight
      }),
    )
    if (!closed) options.onPollRound?.()
  }

  return {
    dispatcher: agent,
    start() {
      if (timer !== undefined || closed) return
      void pollOnce()
      timer = clock.setInterval(() => void pollOnce(), poll.intervalMs)
      timer.unref?.()
      const health = options.health
      if (health !== undefined) {
        for (const backend of backends) void checkHealthOf(backend)
        healthTimer = clock.setInterval(() => {
          for (const backend of backends) void checkHealthOf(backend)
        }, health.intervalMs)
        healthTimer.unref?.()
      }
    },
    checkHealthSoon(backendId) {
      const backend = backends.find((b) => b.config.name === backendId)
      if (backend !== undefined && options.health !== undefined && !closed) void checkHealthOf(backend)
    },
    pollOnce,
    capacities: () =>
      backends.map((backend) => {
        const state = stateOf(backend)
        return {
          id: state.id,
          capacityTokens: state.capacityTokens,
          usedTokens: state.usedTokens,
          usable: state.usable,
          waiting: state.waiting,
        }
      }),
    states: () => backends.map(stateOf),
    pickForPassthrough() {
      let best: BackendState | undefined
      for (const state of backends.map(stateOf)) {
        if (!state.usable) continue
        if (best === undefined || state.capacityTokens - state.usedTokens > best.capacityTokens - best.usedTokens) {
          best = state
        }
      }
      return best
    },
    servedTokensPerMinute() {
      let perMinute = 0
      for (const backend of backends) {
        const first = backend.counters[0]
        const last = backend.counters.at(-1)
        if (first === undefined || last === undefined || last.atMs <= first.atMs) continue
        perMinute += ((last.total - first.total) / (last.atMs - first.atMs)) * 60_000
      }
      return perMinute
    },
    async close() {
      closed = true
      if (timer !== undefined) clock.clearInterval(timer)
      if (healthTimer !== undefined) clock.clearInterval(healthTimer)
      await Promise.allSettled(backends.flatMap((backend) => [backend.inFlight, backend.healthInFlight]))
      await agent.close()
    },
  }
}
