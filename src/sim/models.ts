import { errors } from '../errors/index.js'
import type { LoraModule } from './options.js'

/**
 * What the emulator serves, as vLLM's `OpenAIServingModels` (`vllm/entrypoints/openai/serving_models.py`)
 * describes it: base models (one per served name) and LoRA adapters, each a model card in `/v1/models`.
 *
 * Three ways to name models:
 * - `model` alone: one model, served under that name (vLLM without `--served-model-name`).
 * - `servedModelName: [a, b]`: aliases of the one model (vLLM's `--served-model-name a b`). A request may use
 *   either; responses and metrics carry the first, and both cards' `root` is the model.
 * - `models: [a, b]`: distinct models on one emulated server (a kvgate extension), sharing one KV pool. Each
 *   answers under its own name, has its own per-request metric series, and its own prefix-cache hashes.
 *
 * LoRA adapters (`--lora-modules name=path`) are cards with `root` = the adapter's path and `parent` = their
 * base model; a request naming one is answered under the adapter's name and counted in its base model's
 * metrics (vLLM labels metrics with the served model only). Its KV blocks hash apart from the base model's,
 * as vLLM puts the adapter in each block's hash.
 */
export interface ServedModel {
  /** The card's `id`: what a request's `model` names. */
  readonly id: string
  readonly root: string
  readonly parent: string | null
  /** The `model` field of responses. */
  readonly responseName: string
  /** The `model_name` label its requests are counted under. */
  readonly metricsName: string
  /** Salt for the first block's hash, so different models never share cached blocks. */
  readonly cacheSalt: number
  readonly isLora: boolean
}

export interface ModelCatalog {
  /** The first served name: the label of engine-wide series (one KV pool). */
  readonly primaryName: string
  /** The `model_name` labels with their own per-request series, primary first. */
  readonly metricsNames: readonly string[]
  /** The model a request names (absent: the first base model); an unknown one is vLLM's 404. */
  resolve(requested: string | null | undefined): ServedModel
  /** `GET /v1/models`, as vLLM's `show_available_models`. */
  list(maxModelLen: number, created: number, permissionId: string): object
}

export interface ModelCatalogSpec {
  model: string
  servedModelName: readonly string[] | null
  models: readonly string[] | null
  loraModules: readonly LoraModule[]
}

/** FNV-1a over the name: a stable, non-zero 32-bit salt per KV identity. */
function saltOf(name: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193)
  return (hash >>> 0) + 1
}

/** Refuses combinations that cannot be served; names the field. */
export function checkModelSpec(spec: ModelCatalogSpec, source: string): string[] {
  const problems: string[] = []
  if (spec.models !== null && spec.servedModelName !== null) {
    problems.push(
      `${source}: models and servedModelName exclude each other (models: distinct models; servedModelName: aliases of one)`,
    )
  }
  const bases = spec.models ?? spec.servedModelName ?? [spec.model]
  const seen = new Set(bases)
  for (const lora of spec.loraModules) {
    if (seen.has(lora.name)) problems.push(`${source}: loraModules: "${lora.name}" is already a served model name`)
    seen.add(lora.name)
    if (lora.baseModelName !== undefined && !bases.includes(lora.baseModelName)) {
      problems.push(`${source}: loraModules: "${lora.name}" names base model "${lora.baseModelName}", not served`)
    }
  }
  return problems
}

export function createModelCatalog(spec: ModelCatalogSpec): ModelCatalog {
  const names = spec.models ?? spec.servedModelName ?? [spec.model]
  const distinct = spec.models !== null
  const first = names[0]!
  const bases: ServedModel[] = names.map((name) => ({
    id: name,
    // vLLM's card root is the model path; distinct models are each their own.
    root: distinct ? name : spec.model,
    parent: null,
    responseName: distinct ? name : first,
    metricsName: distinct ? name : first,
    cacheSalt: saltOf(distinct ? name : spec.model),
    isLora: false,
  }))
  const loras: ServedModel[] = spec.loraModules.map((lora) => {
    const parent = bases.find((b) => b.id === (lora.baseModelName ?? first))!
    return {
      id: lora.name,
      root: lora.path,
      parent: parent.id,
      responseName: lora.name,
      metricsName: parent.metricsName,
      cacheSalt: saltOf(`lora:${lora.name}`),
      isLora: true,
    }
  })
  const byId = new Map([...bases, ...loras].map((m) => [m.id, m]))
  const metricsNames = [...new Set(bases.map((b) => b.metricsName))]

  return {
    primaryName: first,
    metricsNames,
    resolve(requested) {
      if (requested == null || requested === '') return bases[0]!
      const found = byId.get(requested)
      if (found === undefined) {
        throw errors.notFound([`The model \`${requested}\` does not exist.`], { param: 'model' })
      }
      return found
    },
    list(maxModelLen, created, permissionId) {
      const card = (m: ServedModel): object => ({
        id: m.id,
        object: 'model',
        created,
        owned_by: 'vllm',
        root: m.root,
        parent: m.parent,
        // vLLM gives adapters' cards no context length of their own.
        max_model_len: m.isLora ? null : maxModelLen,
        permission: [
          {
            id: permissionId,
            object: 'model_permission',
            created,
            allow_create_engine: false,
            allow_sampling: true,
            allow_logprobs: true,
            allow_search_indices: false,
            allow_view: true,
            allow_fine_tuning: false,
            organization: '*',
            group: null,
            is_blocking: false,
          },
        ],
      })
      return { object: 'list', data: [...bases, ...loras].map(card) }
    },
  }
}

/** `--lora-modules` entries: vLLM's `name=path`, or its JSON form `{"name", "path", "base_model_name"}`. */
export function parseLoraModule(text: string): LoraModule {
  const trimmed = text.trim()
  if (trimmed.startsWith('{')) {
    let raw: unknown
    try {
      raw = JSON.parse(trimmed)
    } catch (cause) {
      throw errors.invalidConfig([`--lora-modules: not valid JSON: ${trimmed}`], { cause })
    }
    const { name, path, base_model_name: base } = (raw ?? {}) as Record<string, unknown>
    if (typeof name !== 'string' || typeof path !== 'string' || name === '' || path === '') {
      throw errors.invalidConfig([`--lora-modules: JSON needs "name" and "path" strings: ${trimmed}`])
    }
    if (base !== undefined && typeof base !== 'string') {
      throw errors.invalidConfig([`--lora-modules: "base_model_name" must be a string: ${trimmed}`])
    }
    return base === undefined ? { name, path } : { name, path, baseModelName: base }
  }
  const eq = trimmed.indexOf('=')
  if (eq <= 0 || eq === trimmed.length - 1) {
    throw errors.invalidConfig([`--lora-modules: expected name=path or JSON, got "${text}"`])
  }
  return { name: trimmed.slice(0, eq), path: trimmed.slice(eq + 1) }
}
