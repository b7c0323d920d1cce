import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { ConfirmationResult, SharedStateStatus } from './shared-admission.js'

export interface StateMetrics {
  confirmation(result: ConfirmationResult, seconds: number): void
}

// Loopback Redis answers in a fraction of a millisecond; a slow or remote one in a few.
const CONFIRM_BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5]

/**
 * The shared state's metrics, on the gateway's own registry: whether the store answers, whether admission is
 * in degraded mode (the alert `KvgateStateDegraded` fires on it), how many replicas share it, and what each
 * admission's confirmation cost and concluded.
 */
export function registerStateMetrics(registry: Registry, status: () => SharedStateStatus): StateMetrics {
  const registers = [registry]
  new Gauge({
    name: 'kvgate_state_store_up',
    help: 'The shared state store answers (1) or not (0).',
    registers,
    collect() {
      this.set(status().up ? 1 : 0)
    },
  })
  new Gauge({
    name: 'kvgate_state_degraded',
    help: 'Admission runs on this replica’s 1/N share of each backend because the shared store is unreachable (1), or on the shared ledger (0).',
    registers,
    collect() {
      this.set(status().degraded ? 1 : 0)
    },
  })
  new Gauge({
    name: 'kvgate_state_replicas',
    help: 'Replicas whose lease is live in the shared store, as last read (the N of degraded mode).',
    registers,
    collect() {
      this.set(status().replicas)
    },
  })
  new Gauge({
    name: 'kvgate_state_resyncs',
    help: 'Times this replica re-asserted its reservations in the shared store (start, and each recovery).',
    registers,
    collect() {
      this.set(status().resyncs)
    },
  })
  const confirmations = new Counter({
    name: 'kvgate_state_confirmations_total',
    help: 'Admissions sent to the shared store for confirmation, by result.',
    labelNames: ['result'],
    registers,
  })
  const confirmSeconds = new Histogram({
    name: 'kvgate_state_confirm_seconds',
    help: 'Round trip of one admission’s confirmation in the shared store.',
    buckets: CONFIRM_BUCKETS_SECONDS,
    registers,
  })
  return {
    confirmation(result, seconds) {
      confirmations.inc({ result })
      confirmSeconds.observe(seconds)
    },
  }
}
