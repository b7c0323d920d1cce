import { parseConfig } from '../../../src/config/index.js'
import { createGateway } from '../../../src/gateway/index.js'
import { serveUntilDisconnected } from './processes.js'

/**
 * kvgate in its own process (see `forkServer`), configured as a user would: admission on with the given
 * policy, per-request log lines at `info` (written to /dev/null by the parent, but still formatted and
 * written, as in production), and one backend per upstream URL.
 */
const {
  upstreams,
  policy,
  metricsPoll,
  config: overrides,
} = JSON.parse(process.argv[2] ?? '{}') as {
  upstreams: string[]
  policy: string
  metricsPoll?: Record<string, number>
  /** Whole config sections to set (e.g. `{ telemetry: { logLevel: 'warn' } }`), for A/B runs. */
  config?: Record<string, unknown>
}

serveUntilDisconnected(async () => {
  const config = parseConfig({
    server: { host: '127.0.0.1', port: 0 },
    backends: upstreams.map((url, i) => ({ url, name: `backend-${i}` })),
    policy: { name: policy, options: {} },
    ...(metricsPoll === undefined ? {} : { metricsPoll }),
    telemetry: { logLevel: 'info' },
    ...overrides,
  })
  const gateway = await createGateway({ config })
  const url = await gateway.listen({ port: 0, host: '127.0.0.1' })
  return { urls: [url], close: () => gateway.close() }
})
