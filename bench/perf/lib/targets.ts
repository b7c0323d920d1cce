import { startNginx } from './nginx.js'
import { forkServer, type ServerProcess } from './processes.js'

/**
 * The servers a perf benchmark compares, side by side in one run: the upstream called directly, nginx in
 * front of it, optionally a bare Node proxy, and kvgate in front of it with each admission policy. All run as
 * separate processes.
 */
export interface Target {
  /** Row label: `direct`, `nginx`, `kvgate-fifo`, … */
  readonly name: string
  readonly url: string
  /** The proxy's own process (absent for `direct`), for CPU accounting. */
  readonly proxyPid?: number
}

export type UpstreamKind = 'sim' | 'stub'

/** The emulator's model name in every perf run; clients send it, kvgate forwards it. */
export const PERF_MODEL = 'perf-model'

export interface PerfStack {
  readonly upstream: ServerProcess
  readonly targets: readonly Target[]
  /** Targets that could not start (e.g. a policy not registered yet), with the reason. */
  readonly skipped: readonly string[]
  close(): Promise<void>
}

export interface PerfStackOptions {
  readonly upstream: UpstreamKind
  readonly policies: readonly string[]
  /** Extra options for the emulator (KV size, batch size) on top of the zero latency model. */
  readonly sim?: Readonly<Record<string, unknown>>
  readonly withNginx?: boolean
  /** Also a bare Node proxy (node:http + undici, nothing else): Node's own floor under kvgate. */
  readonly withBareProxy?: boolean
  /** Also Fastify + undici with nothing else (non-streaming only): Fastify's share of kvgate's cost. */
  readonly withFastifyBare?: boolean
  readonly metricsPoll?: Readonly<Record<string, number>>
}

export async function startPerfStack(options: PerfStackOptions): Promise<PerfStack> {
  const upstream = await startUpstream(options.upstream, options.sim)
  const closers: (() => Promise<void>)[] = [() => upstream.close()]
  const targets: Target[] = [{ name: 'direct', url: upstream.url }]
  const skipped: string[] = []
  try {
    if (options.withNginx !== false) {
      try {
        const nginx = await startNginx({ upstream: upstream.url })
        closers.push(() => nginx.close())
        targets.push({ name: 'nginx', url: nginx.url, proxyPid: nginx.pid })
      } catch (error) {
        // Not installed (a CI runner): the other rows still compare with direct.
        skipped.push(`nginx: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`)
      }
    }
    if (options.withBareProxy === true) {
      const bare = await forkServer('./bare-proxy-child', { upstream: upstream.url })
      closers.push(() => bare.close())
      targets.push({ name: 'node-bare', url: bare.url, proxyPid: bare.pid })
    }
    if (options.withFastifyBare === true) {
      const bare = await forkServer('./fastify-bare-child', { upstream: upstream.url })
      closers.push(() => bare.close())
      targets.push({ name: 'fastify-bare', url: bare.url, proxyPid: bare.pid })
    }
    for (const spec of options.policies) {
      // `fifo+quiet`: the fifo policy with telemetry.logLevel warn (no per-request log line), an A/B row.
      const [policy = spec, variant] = spec.split('+')
      const config = variant === 'quiet' ? { config: { telemetry: { logLevel: 'warn' } } } : {}
      try {
        const gateway = await startGatewayProcess({
          upstreams: [upstream.url],
          policy,
          ...config,
          ...(options.metricsPoll === undefined ? {} : { metricsPoll: options.metricsPoll }),
        })
        closers.push(() => gateway.close())
        targets.push({ name: `kvgate-${spec}`, url: gateway.url, proxyPid: gateway.pid })
      } catch (error) {
        skipped.push(`kvgate-${spec}: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`)
      }
    }
  } catch (error) {
    await Promise.allSettled(closers.map((close) => close()))
    throw error
  }
  return {
    upstream,
    targets,
    skipped,
    async close() {
      // Proxies first, the upstream last, so no proxy logs a burst of upstream errors on the way down.
      for (const close of closers.slice(1).reverse()) await close().catch(() => {})
      await upstream.close()
    },
  }
}

/**
 * The emulator with its latency model at zero, so that a step costs only the emulator's own CPU and the
 * proxy in front is the bottleneck; KV and batch limits are raised so that no request waits in its queue.
 */
export const ZERO_LATENCY_SIM = Object.freeze({
  model: PERF_MODEL,
  latency: { stepFixedMs: 0, prefillTokenMs: 0, runningSeqMs: 0, contextTokenMs: 0 },
  numGpuBlocks: 200_000, // 3.2M tokens at block size 16: room for every request of every benchmark
  maxNumSeqs: 2048, // more than the 1,000 concurrent streams
  maxNumBatchedTokens: 1_000_000,
  enablePrefixCaching: false,
})

/** `count` upstreams in one process (several only for the polling benchmark). */
export function startUpstream(
  kind: UpstreamKind,
  sim?: Readonly<Record<string, unknown>>,
  count = 1,
): Promise<ServerProcess> {
  if (kind === 'stub') return forkServer('./stub-child', { count })
  return forkServer('./sim-child', { ...ZERO_LATENCY_SIM, ...sim, count })
}

/** kvgate with admission on and the given policy, one backend per upstream URL. */
export function startGatewayProcess(options: {
  upstreams: readonly string[]
  policy: string
  /** Overrides of kvgate's `metricsPoll` section (the streaming benchmark relaxes staleness). */
  metricsPoll?: Readonly<Record<string, number>>
  /** Whole config sections to set, for A/B runs. */
  config?: Readonly<Record<string, unknown>>
  execArgv?: readonly string[]
}): Promise<ServerProcess> {
  const { execArgv, ...config } = options
  return forkServer('./gateway-child', config, execArgv)
}
