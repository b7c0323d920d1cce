import { readFileSync } from 'node:fs'
import { collectDefaultMetrics, Gauge, type Registry } from 'prom-client'

export interface BuildInfo {
  readonly version: string
  readonly nodeVersion: string
}

/**
 * kvgate's version from its package.json (src/ and dist/ both sit one folder below it), read when a gateway
 * is built: the `version` label of `kvgate_build_info`, what an operator checks after a roll-out.
 */
export function buildInfo(): BuildInfo {
  let version = 'unknown'
  try {
    const file = new URL('../../package.json', import.meta.url)
    version = String((JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version ?? 'unknown')
  } catch {
    // An embedder's bundle without the file: the build is still reported, as `unknown`.
  }
  return { version, nodeVersion: process.version }
}

const UNLINTABLE_DEFAULTS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
] as const

/**
 * The process and Node.js metrics every Node service exports (`process_cpu_seconds_total`,
 * `process_resident_memory_bytes`, `nodejs_eventloop_lag_seconds`, `nodejs_heap_size_used_bytes`, …) and
 * `kvgate_build_info`, into the gateway's own registry: prom-client's global registry is never used, so
 * several gateways in one process each export their own.
 */
export function registerProcessMetrics(registry: Registry, build: BuildInfo = buildInfo()): void {
  collectDefaultMetrics({ register: registry })
  // prom-client names three gauges `_total`, which promtool's lint refuses (a `_total` is a counter's); each
  // is the sum of a per-type gauge it also exports (`nodejs_active_handles{type}`, …), so nothing is lost.
  for (const name of UNLINTABLE_DEFAULTS) registry.removeSingleMetric(name)
  const info = new Gauge({
    name: 'kvgate_build_info',
    help: 'Always 1; the labels say which kvgate and which Node.js run.',
    labelNames: ['version', 'node_version'] as const,
    registers: [registry],
  })
  info.set({ version: build.version, node_version: build.nodeVersion }, 1)
}
