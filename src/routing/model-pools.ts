import { errors } from '../errors/index.js'
import type { BackendModels } from '../upstream/index.js'

/** A backend as model pools see it: its name and its models (undefined until its list was read). */
export interface PoolMember {
  readonly id: string
  readonly models: BackendModels | undefined
}

/** The model a request goes to, and the context length its pool allows. */
export interface ResolvedModel {
  readonly model: string
  /**
   * The largest `max_model_len` among the pool's backends, undefined when one of them does not say: a
   * request is refused for its length only when no backend of the pool could take it.
   */
  readonly maxModelLen: number | undefined
}

/**
 * A request's model pool: the backends serving the model it names (a base model, an alias, or a LoRA
 * adapter: vLLM lists each as a card of its own). With no model named, vLLM serves its first model; across a
 * fleet that is `models.default` when set, else the first model listed by the first backend (in `backends`
 * order) whose list is known, so a single-model fleet behaves as one vLLM does.
 *
 * Throws, before the request is queued: 404 `model_not_found` (vLLM's body) when every backend's list is known
 * and none serves the model; 503 `no_backend_available` when some list is still unknown (the model may be
 * there: refusing it as unknown would be a lie).
 */
export function resolveModel(
  requested: string | undefined,
  members: readonly PoolMember[],
  defaultModel: string | null,
): ResolvedModel {
  let name = requested ?? defaultModel ?? undefined
  if (name === undefined) {
    const first = members.find((m) => m.models !== undefined)?.models
    if (first === undefined) throw errors.noBackendAvailable(['no backend has listed its models yet'])
    name = (first.models.find((m) => m.parent === null) ?? first.models[0])?.id
    if (name === undefined) throw errors.noBackendAvailable(['no backend serves a model'])
  }
  let served = false
  let unknownLength = false
  let maxModelLen = 0
  for (const member of members) {
    const model = member.models?.byId.get(name)
    if (model === undefined) continue
    served = true
    if (model.maxModelLen === undefined) unknownLength = true
    else maxModelLen = Math.max(maxModelLen, model.maxModelLen)
  }
  if (!served) {
    const unread = members.filter((m) => m.models === undefined).map((m) => m.id)
    if (unread.length > 0) {
      throw errors.noBackendAvailable([`the models of ${unread.join(', ')} have not been read yet`])
    }
    throw errors.modelNotFound([name], { param: 'model' })
  }
  return { model: name, maxModelLen: unknownLength ? undefined : maxModelLen }
}

/**
 * `GET /v1/models` across the fleet: every model any backend serves, once, as the first backend listing it
 * wrote its card (backends in config order, cards in each one's order). 503 while no backend's list is known.
 */
export function listModels(members: readonly PoolMember[]): { object: 'list'; data: Record<string, unknown>[] } {
  if (members.every((m) => m.models === undefined)) {
    throw errors.noBackendAvailable(['no backend has listed its models yet'])
  }
  const seen = new Set<string>()
  const data: Record<string, unknown>[] = []
  for (const member of members) {
    for (const model of member.models?.models ?? []) {
      if (seen.has(model.id)) continue
      seen.add(model.id)
      data.push({ ...model.card })
    }
  }
  return { object: 'list', data }
}
