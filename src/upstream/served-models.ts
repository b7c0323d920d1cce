import { request, type Dispatcher } from 'undici'
import type { BackendConfig } from '../config/index.js'
import { clockTimeoutSignal, type Clock, type TimerHandle } from '../core/index.js'

/** One model a backend serves: a card of its `/v1/models` (a base model or a LoRA adapter), or a configured one. */
export interface ServedModel {
  readonly id: string
  /** Context length in tokens; undefined when unknown (then the gateway leaves the check to vLLM). */
  readonly maxModelLen: number | undefined
  /** The base model of a LoRA adapter (its card's `parent`); null for a base model. */
  readonly parent: string | null
  /** The card as the backend wrote it (only the fields read back out: see `readModelCards`), for `/v1/models`. */
  readonly card: Readonly<Record<string, unknown>>
}

/** What the gateway knows of one backend's models. */
export interface BackendModels {
  /** In the order the backend lists them: the first base model is the one vLLM serves to a request naming none. */
  readonly models: readonly ServedModel[]
  readonly byId: ReadonlyMap<string, ServedModel>
  /** Configured (`backends[].models`) rather than read. */
  readonly configured: boolean
}

export interface ModelDirectoryOptions {
  backends: readonly BackendConfig[]
  /** Shared with the poller: keep-alive connections to the backends, no timers of undici's own. */
  dispatcher: Dispatcher
  clock: Clock
  refreshIntervalMs: number
  /** Between reads while a backend's list is still unknown (it has never answered). */
  retryIntervalMs: number
  /** Bound on one read, on the clock. */
  timeoutMs: number
  /** A backend's list was read for the first time or changed. */
  onChange?: (backendId: string) => void
}

export interface ModelDirectory {
  start(): void
  /** Read every backend's list now (configured ones are known from the start). */
  refresh(): Promise<void>
  /** undefined until the backend's list has been read once. */
  modelsOf(backendId: string): BackendModels | undefined
  /** Why a backend's list is unknown or stale (the last read's failure), for /health and logs. */
  lastError(backendId: string): string | undefined
  close(): Promise<void>
}

/** Cards kept per backend at most: a server lists its model and its adapters, never thousands. */
export const MAX_MODELS_PER_BACKEND = 1_024
const MAX_MODEL_ID_LENGTH = 256
/** Card fields kvgate passes on in its own `/v1/models` (the rest of a card is the backend's business). */
const CARD_FIELDS = ['id', 'object', 'created', 'owned_by', 'root', 'parent', 'max_model_len'] as const

/**
 * Read a `/v1/models` answer (`{object: "list", data: [{id, max_model_len, parent, …}]}`). The upstream is
 * semi-trusted: a body that is not that shape is refused whole (undefined), a card with a bad `id` is skipped,
 * a bad `max_model_len` reads as unknown, and no more than MAX_MODELS_PER_BACKEND cards are kept. A LoRA
 * adapter's card has no context length of its own (vLLM writes null): it inherits its base model's.
 */
export function readModelCards(body: unknown): ServedModel[] | undefined {
  if (typeof body !== 'object' || body === null) return undefined
  const data = (body as { data?: unknown }).data
  if (!Array.isArray(data)) return undefined
  const cards: ServedModel[] = []
  const seen = new Set<string>()
  for (const raw of data) {
    if (cards.length >= MAX_MODELS_PER_BACKEND) break
    if (typeof raw !== 'object' || raw === null) continue
    const entry = raw as Record<string, unknown>
    const id = entry['id']
    if (typeof id !== 'string' || id.length === 0 || id.length > MAX_MODEL_ID_LENGTH || seen.has(id)) continue
    seen.add(id)
    const len = entry['max_model_len']
    const parent = typeof entry['parent'] === 'string' && entry['parent'] !== '' ? entry['parent'] : null
    const card: Record<string, unknown> = {}
    for (const field of CARD_FIELDS) if (entry[field] !== undefined) card[field] = entry[field]
    cards.push({
      id,
      maxModelLen: typeof len === 'number' && Number.isInteger(len) && len > 0 ? len : undefined,
      parent,
      card,
    })
  }
  const bases = new Map(cards.filter((c) => c.parent === null).map((c) => [c.id, c]))
  return cards.map((c) =>
    c.maxModelLen === undefined && c.parent !== null ? { ...c, maxModelLen: bases.get(c.parent)?.maxModelLen } : c,
  )
}

function configuredModels(config: BackendConfig): BackendModels | undefined {
  if (config.models === null) return undefined
  const models = config.models.map((m): ServedModel => {
    const id = typeof m === 'string' ? m : m.name
    const maxModelLen = typeof m === 'string' ? undefined : (m.maxModelLen ?? undefined)
    return {
      id,
      maxModelLen,
      parent: null,
      card: { id, object: 'model', owned_by: 'vllm', root: id, parent: null, max_model_len: maxModelLen ?? null },
    }
  })
  return indexed(models, true)
}

function indexed(models: readonly ServedModel[], configured: boolean): BackendModels {
  return { models, byId: new Map(models.map((m) => [m.id, m])), configured }
}

const sameModels = (a: BackendModels | undefined, b: BackendModels): boolean =>
  a !== undefined &&
  a.models.length === b.models.length &&
  a.models.every((m, i) => m.id === b.models[i]?.id && m.maxModelLen === b.models[i]?.maxModelLen)

interface Entry {
  readonly config: BackendConfig
  models: BackendModels | undefined
  lastError: string | undefined
  inFlight: Promise<void> | undefined
}

/**
 * Which models each backend serves: its pool memberships. Configured lists (`backends[].models`) are fixed;
 * the others are read from `GET /v1/models` at start, every `refreshIntervalMs` after (a vLLM may load or
 * unload LoRA adapters at run time), and every `retryIntervalMs` while a backend has never answered. A read
 * that fails keeps the last good list: a backend that is down is the poller's business (it stops being usable),
 * and forgetting its models would turn its requests into 404s when it comes back.
 */
export function createModelDirectory(options: ModelDirectoryOptions): ModelDirectory {
  const { clock } = options
  const entries = new Map<string, Entry>(
    options.backends.map((config) => [
      config.name,
      { config, models: configuredModels(config), lastError: undefined, inFlight: undefined },
    ]),
  )
  let refreshTimer: TimerHandle | undefined
  let retryTimer: TimerHandle | undefined
  let closed = false

  const read = async (entry: Entry): Promise<void> => {
    const timeout = clockTimeoutSignal(
      clock,
      options.timeoutMs,
      () => new Error(`no answer within ${options.timeoutMs} ms`),
    )
    try {
      const response = await request(`${entry.config.url}/v1/models`, {
        dispatcher: options.dispatcher,
        signal: timeout.signal,
      })
      const text = await response.body.text()
      if (response.statusCode !== 200) {
        entry.lastError = `/v1/models answered ${response.statusCode}`
        return
      }
      let body: unknown
      try {
        body = JSON.parse(text)
      } catch {
        entry.lastError = '/v1/models is not JSON'
        return
      }
      const cards = readModelCards(body)
      if (cards === undefined || cards.length === 0) {
        entry.lastError = '/v1/models lists no model'
        return
      }
      const next = indexed(cards, false)
      entry.lastError = undefined
      if (closed || sameModels(entry.models, next)) return
      entry.models = next
      options.onChange?.(entry.config.name)
    } catch (err) {
      entry.lastError = `/v1/models: ${(err as Error).message}`
    } finally {
      timeout.clear()
    }
  }

  const refreshOne = (entry: Entry): Promise<void> => {
    if (entry.models?.configured === true || closed) return Promise.resolve()
    entry.inFlight ??= read(entry).finally(() => {
      entry.inFlight = undefined
    })
    return entry.inFlight
  }

  const refresh = async (): Promise<void> => {
    await Promise.all([...entries.values()].map(refreshOne))
  }

  return {
    start() {
      if (refreshTimer !== undefined || closed) return
      void refresh()
      refreshTimer = clock.setInterval(() => void refresh(), options.refreshIntervalMs)
      refreshTimer.unref?.()
      // Only the backends never read yet; cheap once every list is known.
      retryTimer = clock.setInterval(() => {
        for (const entry of entries.values()) if (entry.models === undefined) void refreshOne(entry)
      }, options.retryIntervalMs)
      retryTimer.unref?.()
    },
    refresh,
    modelsOf: (backendId) => entries.get(backendId)?.models,
    lastError: (backendId) => entries.get(backendId)?.lastError,
    async close() {
      closed = true
      if (refreshTimer !== undefined) clock.clearInterval(refreshTimer)
      if (retryTimer !== undefined) clock.clearInterval(retryTimer)
      await Promise.allSettled([...entries.values()].map((e) => e.inFlight))
    },
  }
}
