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
}

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
  readonly lastError: string | undefined
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
  /** After each round of polls (all backends settled): run the dispatcher, tick the policy. */
  onPollRound?: () => void
  /** A backend went from usable to not, or back. */
  onUsableChange?: (backend: BackendState) => void
}

export interface BackendPool {
  start(): void
  /** Poll every backend once now; resolves when all answered or failed. */
  pollOnce(): Promise<void>
  capacities(): BackendCapacity[]
  states(): BackendState[]
  /** Usable backend with the most free KV for routes that skip admission; undefined when none is usable. */
  pickForPassthrough(): BackendState | undefined
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
}

/**
 * The vLLM backends behind the gateway: polls each /metrics every `intervalMs` and turns it into capacity and
 * usage. A backend whose last poll failed, or whose last good poll is older than `staleAfterMs`, is not usable:
 * admitting against stale usage is how a burst overfills the KV cache.
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
  }))
  let timer: TimerHandle | undefined
  let closed = false

  const capacityOf = (backend: Backend): number => backend.config.capacityTokens ?? backend.metrics?.capacityTokens ?? 0

  const stateOf = (backend: Backend): BackendState => {
    const nowMs = clock.now()
    const capacityTokens = capacityOf(backend)
    const kvUsageRatio = backend.metrics?.kvUsageRatio ?? 0
    const metricsAgeMs = backend.lastSuccessMs === undefined ? Infinity : nowMs - backend.lastSuccessMs
    const usable = !backend.failing && capacityTokens > 0 && metricsAgeMs <= poll.staleAfterMs && !closed
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
      lastError: backend.lastError,
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

  const fail = (backend: Backend, reason: string): void => {
    backend.failing = true
    backend.pollErrors++
    backend.lastError = reason
  }

  const pollBackend = async (backend: Backend): Promise<void> => {
    const mark = await options.reconciler?.beginPoll(backend.config.name)
    // On the injected clock (not undici's timers or AbortSignal.timeout): a stepped clock drives it in tests,
    // and a loaded machine does not fail polls that the clock says are on time.
    const timeout = clockTimeoutSignal(clock, poll.timeoutMs, () => new Error(`no answer within ${poll.timeoutMs} ms`))
    try {
      const response = await request(`${backend.config.url}/metrics`, { dispatcher: agent, signal: timeout.signal })
      const text = await response.body.text()
      if (response.statusCode !== 200) return fail(backend, `/metrics answered ${response.statusCode}`)
      const metrics = readVllmMetrics(text)
      if (metrics === undefined) return fail(backend, '/metrics has no vllm:kv_cache_usage_perc')
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
      noteUsable(backend)
    }
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
      await Promise.allSettled(backends.map((backend) => backend.inFlight))
      await agent.close()
    },
  }
}
