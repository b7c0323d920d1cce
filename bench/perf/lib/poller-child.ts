import { parseConfig } from '../../../src/config/index.js'
import { createSystemClock } from '../../../src/core/index.js'
import { createBackendPool } from '../../../src/upstream/index.js'
import { serveUntilDisconnected } from './processes.js'

/**
 * kvgate's backend poller alone, in its own process: one backend per upstream URL, polled every `intervalMs`. Separates the cost of polling from the rest of the gateway.
 */
const { upstreams, intervalMs } = JSON.parse(process.argv[2] ?? '{}') as { upstreams: string[]; intervalMs: number }

serveUntilDisconnected(async () => {
  const config = parseConfig({
    backends: upstreams.map((url, i) => ({ url, name: `backend-${i}` })),
    metricsPoll: { intervalMs },
  })
  const pool = createBackendPool({ backends: config.backends, poll: config.metricsPoll, clock: createSystemClock() })
  pool.start()
  return { urls: ['poller'], close: () => pool.close() }
})
