import { isDeepStrictEqual } from 'node:util'
import type { AdmissionTuning } from '../admission/index.js'
import type { KvgateConfig } from '../config/index.js'

// Sections a reload cannot change in a running gateway (sockets, pollers, routes and the predictor are built
// from them).
const RESTART_ONLY_SECTIONS = [
  'server',
  'admin',
  'backends',
  'metricsPoll',
  'healthCheck',
  'passthrough',
  'predictor',
  'state',
  'tracing',
] as const

/**
 * What a reload compares of a section: `backends[].drain` is applied live (the fleet reads it on reload), and
 * of `models` only the reading intervals are fixed at start (the default model and the context check apply).
 */
function restartPart(config: KvgateConfig, section: (typeof RESTART_ONLY_SECTIONS)[number] | 'models'): unknown {
  if (section === 'backends') return config.backends.map(({ drain: _drain, ...rest }) => rest)
  if (section === 'models') return [config.models.refreshIntervalMs, config.models.retryIntervalMs]
  return config[section]
}

/**
 * Two config values are the same when they hold the same values: key order does not matter (a file
 * rewritten by another tool keeps its meaning), array order does (the order of `users` decides who gets a
 * metric label). `JSON.stringify` compared key order too, so a reload that only reordered keys rebuilt the
 * policy and reset everyone's VTC counters.
 */
export const sameValue = (a: unknown, b: unknown): boolean => isDeepStrictEqual(a, b)

/** The admission queue's tuning as a config holds it (what `AdmissionController.configure()` takes). */
export function admissionTuning(config: KvgateConfig): AdmissionTuning {
  const { headroomRatio, deadlineTickMs, maxQueueLength, earlyReject, maxBypassMs, reserveBy, overcommit, ttftSloMs } =
    config.admission
  return { headroomRatio, deadlineTickMs, maxQueueLength, earlyReject, maxBypassMs, reserveBy, overcommit, ttftSloMs }
}

export interface ReloadPlan {
  /**
   * A new policy starts with fresh state (VTC counters, TPM windows): only rebuild it when what it was built
   * from changed, so adding an API key does not reset everyone's fairness history.
   */
  readonly policyChanged: boolean
  /** The admission tuning changed: `configure()` applies it in place. */
  readonly tuningChanged: boolean
  /** Sections that changed but only take effect after a restart (the reload warning names them). */
  readonly needsRestart: readonly string[]
}

/**
 * `previous` is the config in force, `started` the one the process started with: a restart-only section is
 * reported while it differs from what runs (`started`), so a file restored to it stops the warning.
 */
export function planReload(previous: KvgateConfig, next: KvgateConfig, started: KvgateConfig = previous): ReloadPlan {
  return {
    policyChanged:
      !sameValue(previous.policy, next.policy) ||
      !sameValue(previous.users, next.users) ||
      !sameValue(previous.defaultUser, next.defaultUser) ||
      previous.identity.anonymousUser !== next.identity.anonymousUser,
    tuningChanged: !sameValue(admissionTuning(previous), admissionTuning(next)),
    needsRestart: [
      ...[...RESTART_ONLY_SECTIONS, 'models' as const].filter(
        (section) => !sameValue(restartPart(started, section), restartPart(next, section)),
      ),
      // The rest of `limits` is read per request; the head's timeout is the HTTP server's own.
      ...(started.limits.headersTimeoutMs === next.limits.headersTimeoutMs ? [] : ['limits.headersTimeoutMs']),
    ],
  }
}
