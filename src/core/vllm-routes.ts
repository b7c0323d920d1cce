/**
 * vLLM's HTTP routes as kvgate sorts them, read from vLLM's OpenAI server (`vllm/entrypoints/openai/
 * api_server.py` and its routers, 0.9–0.11): what needs admission, what may pass through, what must never
 * be forwarded by default. Shared by the proxy (which routes on them) and the config (whose allow-list may
 * not name a path kvgate routes itself).
 */

/** Routes whose requests hold KV: generation, and the pooling routes, whose prompts are prefilled. */
export const VLLM_GENERATING_PATHS: readonly string[] = Object.freeze([
  '/v1/chat/completions',
  '/v1/completions',
  '/v1/responses',
  '/v1/embeddings',
  '/pooling',
  '/classify',
  '/score',
  '/v1/score',
  '/rerank',
  '/v1/rerank',
  '/v2/rerank',
  '/invocations',
])

export interface VllmRoute {
  readonly method: 'GET' | 'POST'
  readonly path: string
}

/** Routes that hold no KV and change nothing. vLLM's `GET /health` is shadowed by kvgate's own. */
export const VLLM_READ_ONLY_ROUTES: readonly VllmRoute[] = Object.freeze([
  { method: 'GET', path: '/v1/models' },
  { method: 'GET', path: '/version' },
  { method: 'POST', path: '/tokenize' },
  { method: 'POST', path: '/detokenize' },
])

/**
 * Routes that change the server or its engine (dev mode, runtime LoRA updates, profiling, elastic EP, sleep
 * mode, pausing): never forwarded unless allow-listed, and allow-listing one is warned about at start-up.
 */
export const VLLM_ADMIN_PATHS: readonly string[] = Object.freeze([
  '/reset_prefix_cache',
  '/reset_mm_cache',
  '/reset_encoder_cache',
  '/sleep',
  '/wake_up',
  '/is_sleeping',
  '/collective_rpc',
  '/server_info',
  '/v1/load_lora_adapter',
  '/v1/unload_lora_adapter',
  '/start_profile',
  '/stop_profile',
  '/scale_elastic_ep',
  '/is_scaling_elastic_ep',
  '/pause',
  '/resume',
  '/is_paused',
  '/update_weights',
])

/** kvgate's own paths on the public listener (no key needed). */
export const KVGATE_PUBLIC_PATHS: readonly string[] = Object.freeze(['/health', '/livez'])

/** Every path kvgate routes itself: an allow-list entry may not name one. */
export const ROUTED_PATHS: readonly string[] = Object.freeze([
  ...VLLM_GENERATING_PATHS,
  ...VLLM_READ_ONLY_ROUTES.map((route) => route.path),
  ...KVGATE_PUBLIC_PATHS,
])

/** An allow-list entry: an exact path, or every path below a prefix when it ends in `/*` (`/v1/responses/*`). */
export function allowListCovers(entry: string, path: string): boolean {
  if (!entry.endsWith('/*')) return path === entry
  const prefix = entry.slice(0, -1)
  return path.startsWith(prefix) && path.length > prefix.length
}
