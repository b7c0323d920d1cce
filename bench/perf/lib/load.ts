import { createHistogram } from 'node:perf_hooks'
import { Pool } from 'undici'

/**
 * A closed-loop load client: `concurrency` workers each send a request, read the whole answer and send the
 * next, for a fixed time. Closed loop (not a fixed arrival rate) because the question is how many requests
 * per second a proxy can carry and what it adds to each one, not how it behaves past saturation.
 */
export interface ClosedLoopOptions {
  /** Origin of the server under test, e.g. http://127.0.0.1:8080. */
  readonly origin: string
  readonly path: string
  readonly body: unknown
  readonly headers?: Readonly<Record<string, string>>
  readonly concurrency: number
  /** Requests before this are sent but not recorded: JIT, connection set-up, the proxy's upstream pool. */
  readonly warmupMs: number
  readonly durationMs: number
}

export interface ClosedLoopResult {
  readonly requests: number
  readonly errors: number
  readonly requestsPerSecond: number
  readonly p50Ms: number
  readonly p99Ms: number
}

export async function runClosedLoop(options: ClosedLoopOptions): Promise<ClosedLoopResult> {
  // One connection per worker, as a real client pool at this concurrency would hold.
  const pool = new Pool(options.origin, { connections: options.concurrency, pipelining: 1 })
  const payload = JSON.stringify(options.body)
  const headers = { 'content-type': 'application/json', ...options.headers }
  // HDR histogram in nanoseconds (built into Node): constant memory whatever the request count.
  const latency = createHistogram({ lowest: 1, highest: 60e9, figures: 3 })
  let requests = 0
  let errors = 0
  const startedAt = performance.now()
  const recordFrom = startedAt + options.warmupMs
  const stopAt = recordFrom + options.durationMs

  const worker = async (): Promise<void> => {
    while (performance.now() < stopAt) {
      const sentAt = process.hrtime.bigint()
      let ok = false
      try {
        const response = await pool.request({ path: options.path, method: 'POST', headers, body: payload })
        // Read the whole body: a response is only served once its last byte arrived.
        await response.body.arrayBuffer()
        ok = response.statusCode === 200
      } catch {
        ok = false
      }
      const now = performance.now()
      if (now < recordFrom || now > stopAt) continue
      if (!ok) {
        errors += 1
        continue
      }
      requests += 1
      latency.record(Number(process.hrtime.bigint() - sentAt) || 1)
    }
  }

  await Promise.all(Array.from({ length: options.concurrency }, worker))
  await pool.close()
  return {
    requests,
    errors,
    requestsPerSecond: requests / (options.durationMs / 1000),
    p50Ms: requests > 0 ? latency.percentile(50) / 1e6 : Number.NaN,
    p99Ms: requests > 0 ? latency.percentile(99) / 1e6 : Number.NaN,
  }
}
