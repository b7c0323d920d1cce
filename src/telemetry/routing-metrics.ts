import { Counter, Gauge, type Registry } from 'prom-client'

/** Models given a label of their own at most; the rest share `other` (a fleet of LoRA adapters can list hundreds). */
export const MAX_MODEL_LABELS = 64
export const OTHER_MODEL_LABEL = 'other'

export interface RoutingBackendFigures {
  readonly id: string
  /** Routable: polled recently and its models known. */
  readonly usable: boolean
  readonly draining: boolean
  readonly models: readonly string[] | null
}

export interface RoutingMetricSources {
  backends(): readonly RoutingBackendFigures[]
  /** Block hashes the prefix-aware index remembers per backend (empty for other routers). */
  indexBlocks(): Readonly<Record<string, number>>
}

export interface RoutedFigures {
  readonly model: string
  readonly backend: string
  /** A RouteReason: most-room, round-robin, affinity, session, score. */
  readonly reason: string
  readonly promptTokens: number
  readonly expectedHitTokens: number
  readonly sharedTokens: number
}

export interface RoutingMetrics {
  routed(figures: RoutedFigures): void
}

/**
 * The fleet's metrics, on the gateway's registry: where admitted requests were routed and why, what the
 * router expected the backends' prefix caches to hold, and each model's pool (a per-model view beside the
 * predictor's `{model}` gauges). Model labels are bounded: the first MAX_MODEL_LABELS models seen, then `other`.
 */
export function createRoutingMetrics(registry: Registry, sources: RoutingMetricSources): RoutingMetrics {
  const registers = [registry]
  const labelled = new Set<string>()
  const modelLabel = (model: string): string => {
    if (labelled.has(model)) return model
    if (labelled.size >= MAX_MODEL_LABELS) return OTHER_MODEL_LABEL
    labelled.add(model)
    return model
  }

  const decisions = new Counter({
    name: 'kvgate_routing_decisions_total',
    help: 'Admitted requests by the backend they were routed to and why (most-room, round-robin, affinity, session, score).',
    labelNames: ['backend', 'reason'] as const,
    registers,
  })
  const admissions = new Counter({
    name: 'kvgate_model_admissions_total',
    help: 'Admitted requests by model (the first 64 models seen, then other).',
    labelNames: ['model'] as const,
    registers,
  })
  const promptTokens = new Counter({
    name: 'kvgate_routing_prompt_tokens_total',
    help: 'Prompt tokens of admitted requests, by backend.',
    labelNames: ['backend'] as const,
    registers,
  })
  const expectedHits = new Counter({
    name: 'kvgate_routing_expected_hit_tokens_total',
    help: "Prompt tokens the router expected in the backend's prefix cache (over prompt tokens: the expected hit rate).",
    labelNames: ['backend'] as const,
    registers,
  })
  const shared = new Counter({
    name: 'kvgate_routing_shared_prompt_tokens_total',
    help: 'Prompt tokens left out of reservations because requests running on the backend hold the same blocks.',
    labelNames: ['backend'] as const,
    registers,
  })
  new Gauge({
    name: 'kvgate_routing_index_blocks',
    help: "Block hashes the prefix-aware router remembers for the backend's cache.",
    labelNames: ['backend'] as const,
    registers,
    collect() {
      this.reset()
      for (const [backend, blocks] of Object.entries(sources.indexBlocks())) this.set({ backend }, blocks)
    },
  })
  new Gauge({
    name: 'kvgate_backend_draining',
    help: '1 while the backend is draining (no new admissions, running requests finish).',
    labelNames: ['backend'] as const,
    registers,
    collect() {
      for (const b of sources.backends()) this.set({ backend: b.id }, b.draining ? 1 : 0)
    },
  })
  new Gauge({
    name: 'kvgate_pool_backends',
    help: "Backends of a model's pool that take new requests (usable and not draining), by model.",
    labelNames: ['model'] as const,
    registers,
    collect() {
      this.reset()
      const counts = new Map<string, number>()
      for (const b of sources.backends()) {
        for (const model of b.models ?? []) {
          const label = modelLabel(model)
          counts.set(label, (counts.get(label) ?? 0) + (b.usable && !b.draining ? 1 : 0))
        }
      }
      for (const [model, n] of counts) this.set({ model }, n)
    },
  })

  return {
    routed(f) {
      decisions.inc({ backend: f.backend, reason: f.reason })
      admissions.inc({ model: modelLabel(f.model) })
      if (f.promptTokens > 0) promptTokens.inc({ backend: f.backend }, f.promptTokens)
      if (f.expectedHitTokens > 0) expectedHits.inc({ backend: f.backend }, f.expectedHitTokens)
      if (f.sharedTokens > 0) shared.inc({ backend: f.backend }, f.sharedTokens)
    },
  }
}
