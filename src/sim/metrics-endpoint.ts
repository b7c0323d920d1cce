import type { FastifyReply } from 'fastify'
import type { Clock } from '../core/index.js'
import type { Engine } from './engine.js'
import { injectedFault, overrideMetricValues, padMetrics } from './fault-effects.js'
import { type ModelMetrics, renderMetrics, type SimMetrics } from './metrics.js'
import type { FaultConfig } from './options.js'

/**
 * `GET /metrics`: the engine's state rendered as vLLM's exposition, then whatever the faults make of it
 * (late, unavailable, lying, flooded). It answers while the engine is dead, as vLLM's API server does.
 */
export interface MetricsEndpointDeps {
  engine: Engine
  clock: Clock
  /** Per-request metrics by `model_name`, the primary (engine-wide) model first. */
  models: ReadonlyArray<readonly [name: string, metrics: SimMetrics]>
  compat: 'v1' | 'v0'
  cacheConfig: Readonly<Record<string, string>>
  createdSeconds: number
  offloading: boolean
  faults: () => FaultConfig
}

export function createMetricsEndpoint(deps: MetricsEndpointDeps): (reply: FastifyReply) => Promise<FastifyReply> {
  const { engine } = deps
  const single = deps.models.length === 1

  const modelSeries = (): ModelMetrics[] => {
    if (single) {
      const state = engine.state()
      const [name, metrics] = deps.models[0]!
      return [{ name, metrics, running: state.running, waiting: state.waiting }]
    }
    const tally = engine.tally()
    return deps.models.map(([name, metrics]) => ({
      name,
      metrics,
      running: tally.get(metrics)?.running ?? 0,
      waiting: tally.get(metrics)?.waiting ?? 0,
    }))
  }

  return async (reply) => {
    let faults = deps.faults()
    if (faults.metricsDelayMs > 0) {
      await new Promise<void>((resolve) => deps.clock.setTimeout(resolve, faults.metricsDelayMs))
      faults = deps.faults()
    }
    if (faults.metricsUnavailable) throw injectedFault('/metrics is unavailable')
    const labels = faults.cacheConfigLabels
    let text = renderMetrics(modelSeries(), {
      compat: deps.compat,
      kvCacheUsage: engine.usage(),
      cacheConfig: Object.keys(labels).length === 0 ? deps.cacheConfig : { ...deps.cacheConfig, ...labels },
      createdSeconds: deps.createdSeconds,
      offloading: deps.offloading,
    })
    if (Object.keys(faults.metricsOverrides).length > 0) text = overrideMetricValues(text, faults.metricsOverrides)
    if (faults.metricsPadBytes > 0) text = padMetrics(text, faults.metricsPadBytes)
    return reply.type('text/plain; version=0.0.4; charset=utf-8').send(text)
  }
}
