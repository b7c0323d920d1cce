import type { BackendState } from './backend-pool.js'

/**
 * Why a backend is or is not usable, as a fixed list (safe for a public `/health` and for metric labels:
 * never a message, a URL or an address). The detail stays in `lastError`, on the admin listener and in logs.
 */
export const BACKEND_READINESS = [
  'usable',
  /** No poll has finished yet. */
  'starting',
  /** Nothing listens at the URL's host and port. */
  'connection_refused',
  /** The host does not resolve, or the network does not reach it. */
  'unreachable',
  /** A poll or health check got no answer in time. */
  'timeout',
  /** `/metrics` answered with a status other than 200. */
  'metrics_http_error',
  /** `/metrics` answered, but without vLLM's KV metrics: another server is at the URL. */
  'not_vllm',
  /** The page's figures cannot be true (a usage outside [0, 1], a capacity that contradicts itself, …). */
  'metrics_not_believable',
  /** vLLM answers but says nothing of its KV capacity, and none is configured. */
  'capacity_unknown',
  /** The engine's own `/health` fails. */
  'engine_unhealthy',
  /** The last good poll is older than `metricsPoll.staleAfterMs`. */
  'metrics_stale',
] as const
export type BackendReadiness = (typeof BACKEND_READINESS)[number]

export interface BackendDiagnosis {
  readonly readiness: BackendReadiness
  /** What to check, for the likeliest mistakes (a `/v1` suffix, the wrong port, another server). */
  readonly hint: string | undefined
}

const V1_SUFFIX = /\/v1$/
const VLLM_DEFAULT_PORT = 8000

function readinessOf(state: BackendState): BackendReadiness {
  if (state.usable) return 'usable'
  const error = state.lastError ?? ''
  // The pool reports a failing poll before a failed health check (a wrong URL fails both).
  if (error.startsWith('engine not healthy')) {
    return /ECONNREFUSED/.test(error) ? 'connection_refused' : 'engine_unhealthy'
  }
  if (/ECONNREFUSED/.test(error)) return 'connection_refused'
  if (/ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH/.test(error)) return 'unreachable'
  if (/no answer within|ETIMEDOUT|timeout/i.test(error)) return 'timeout'
  if (/^\/metrics answered \d+/.test(error)) return 'metrics_http_error'
  if (/has no vllm:kv_cache_usage_perc/.test(error)) return 'not_vllm'
  if (/KV capacity unknown/.test(error)) return 'capacity_unknown'
  if (error !== '') return 'metrics_not_believable'
  if (state.healthy === false) return 'engine_unhealthy'
  if (!Number.isFinite(state.metricsAgeMs)) return 'starting'
  return state.up ? 'metrics_stale' : 'starting'
}

function portOf(url: string): string {
  try {
    const parsed = new URL(url)
    return parsed.port || (parsed.protocol === 'https:' ? '443' : '80')
  } catch {
    return '?'
  }
}

/**
 * The state of one backend read the way an operator asks about it: usable or not, why (a fixed name), and
 * for the first mistakes people make a hint saying what to change. vLLM serves `/metrics` and `/health` at
 * its root and the OpenAI routes under `/v1`; kvgate adds the paths itself, so a base URL ending in `/v1`
 * (what OpenAI clients are given) polls `/v1/metrics`, which vLLM answers 404.
 */
export function diagnoseBackend(state: BackendState): BackendDiagnosis {
  const readiness = readinessOf(state)
  const v1 = V1_SUFFIX.test(state.url)
  let hint: string | undefined
  if (v1 && readiness !== 'usable') {
    hint = `the URL ends in /v1: give vLLM's root URL (${state.url.replace(V1_SUFFIX, '')}); kvgate adds /v1/... and /metrics itself`
  } else if (readiness === 'connection_refused') {
    const port = portOf(state.url)
    hint = `nothing listens on port ${port} at ${state.url}: is vLLM running, and is the port right (vLLM's default is ${VLLM_DEFAULT_PORT})?`
  } else if (readiness === 'not_vllm') {
    hint = `${state.url}/metrics answers without vllm:* metrics: the URL points at another server, not vLLM`
  } else if (readiness === 'metrics_http_error') {
    hint = `${state.url}/metrics is not vLLM's metrics page: check the URL is vLLM's root (no path) and its port`
  } else if (readiness === 'capacity_unknown') {
    hint = 'set backends[].capacityTokens (block_size × num_gpu_blocks) for this backend'
  } else if (readiness === 'unreachable') {
    hint = `the host of ${state.url} cannot be reached: check the name and the network`
  }
  return { readiness, hint }
}
