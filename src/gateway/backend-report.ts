import type { Logger } from 'pino'
import { type Dispatcher, request } from 'undici'
import { type Clock, clockTimeoutSignal } from '../core/index.js'
import { type BackendReadiness, type BackendState, diagnoseBackend } from '../upstream/index.js'

const MODELS_BODY_MAX_BYTES = 256 * 1024 // 256 KiB: a model list is a few hundred bytes per model
const MODELS_SHOWN_MAX = 20 // model ids in the start-up line; more are counted, not listed

/** The model ids of a backend's `/v1/models`, or why they could not be read (a best effort: never throws). */
async function probeModels(
  url: string,
  dispatcher: Dispatcher,
  clock: Clock,
  timeoutMs: number,
): Promise<{ models?: string[]; modelsError?: string }> {
  const timeout = clockTimeoutSignal(clock, timeoutMs, () => new Error(`no answer within ${timeoutMs} ms`))
  try {
    // Marked, so a backend's access log (and a test's fake) can tell it from a client's request.
    const response = await request(`${url}/v1/models`, {
      dispatcher,
      signal: timeout.signal,
      headers: { 'x-kvgate-probe': 'start-up' },
    })
    if (response.statusCode !== 200) {
      await response.body.dump()
      const auth = response.statusCode === 401 ? ' (vLLM started with --api-key?)' : ''
      return { modelsError: `/v1/models answered ${response.statusCode}${auth}` }
    }
    let bytes = 0
    let text = ''
    for await (const chunk of response.body) {
      bytes += (chunk as Buffer).length
      if (bytes > MODELS_BODY_MAX_BYTES) {
        response.body.destroy()
        return { modelsError: '/v1/models is too large to read' }
      }
      text += String(chunk)
    }
    const data = (JSON.parse(text) as { data?: { id?: unknown }[] }).data
    const ids = (Array.isArray(data) ? data : []).map((m) => m.id).filter((id) => typeof id === 'string')
    return { models: ids.slice(0, MODELS_SHOWN_MAX) as string[] }
  } catch (err) {
    return { modelsError: `/v1/models failed: ${(err as Error).message}` }
  } finally {
    timeout.clear()
  }
}

export interface FirstResultReport {
  readonly logger: Logger
  readonly dispatcher: Dispatcher
  readonly clock: Clock
  readonly timeoutMs: number
}

/**
 * The start-up line of one backend, once its first poll settled: reachable, a vLLM, its KV capacity and
 * models; or why not, with a hint for the likeliest mistakes. Without it a wrong URL shows only as a rising
 * poll-error counter and 503s.
 */
export async function reportFirstResult(state: BackendState, report: FirstResultReport): Promise<void> {
  const { readiness, hint } = diagnoseBackend(state)
  const fields = { backend: state.id, url: state.url }
  if (readiness === 'usable') {
    const models = await probeModels(state.url, report.dispatcher, report.clock, report.timeoutMs)
    report.logger.info(
      { ...fields, vllm: true, capacityTokens: state.capacityTokens, kvUsageRatio: state.kvUsageRatio, ...models },
      `backend ${state.id} ready: vLLM with ${state.capacityTokens} tokens of KV cache`,
    )
    return
  }
  report.logger.warn(
    { ...fields, readiness, error: state.lastError, hint, reachable: state.up },
    `backend ${state.id} not usable at start-up: ${state.lastError ?? readiness}${hint === undefined ? '' : `; hint: ${hint}`}`,
  )
}

export interface ReadinessBackend {
  readonly name: string
  readonly usable: boolean
  readonly readiness: BackendReadiness
  readonly up: boolean
  readonly healthy: boolean | null
  readonly metricsAgeMs: number | null
  readonly lastError?: string | null
  readonly hint?: string | null
}

/**
 * `/health` (readiness): 200 while a backend is usable, else 503, with each backend's state. `detailed`
 * adds the last error and the hint, which may name hosts and ports: the admin listener's answer, not the
 * public one's.
 */
/** A backend as readiness reads it: the pool's state, and the fleet's draining flag and models when routed. */
export type ReadinessInput = BackendState & {
  readonly draining?: boolean
  readonly models?: readonly string[] | null
}

/** The shared state's figures `/health` shows (src/state), with a shared store only. */
export interface SharedStateStatus {
  readonly store: string
  readonly up: boolean
  readonly degraded: boolean
  readonly replicas: number
}

export function readiness(
  states: readonly ReadinessInput[],
  shuttingDown: boolean,
  detailed: boolean,
  shared?: SharedStateStatus,
): { status: number; body: { status: string; backends: ReadinessBackend[]; state?: SharedStateStatus } } {
  // Ready while some backend takes new requests: a fleet that is all draining sends traffic elsewhere.
  const up = !shuttingDown && states.some((s) => s.usable && s.draining !== true)
  return {
    status: up ? 200 : 503,
    body: {
      status: shuttingDown ? 'shutting_down' : !up ? 'unavailable' : shared?.degraded === true ? 'degraded' : 'ok',
      ...(shared === undefined ? {} : { state: shared }),
      backends: states.map((s) => {
        const diagnosis = diagnoseBackend(s)
        return {
          name: s.id,
          usable: s.usable,
          readiness: diagnosis.readiness,
          up: s.up,
          healthy: s.healthy,
          ...(s.draining === undefined ? {} : { draining: s.draining }),
          ...(s.models === undefined ? {} : { models: s.models }),
          metricsAgeMs: Number.isFinite(s.metricsAgeMs) ? Math.round(s.metricsAgeMs) : null,
          ...(detailed ? { lastError: s.lastError ?? null, hint: diagnosis.hint ?? null } : {}),
        }
      }),
    },
  }
}
