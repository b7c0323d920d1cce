import { Redis } from 'ioredis'
import { errors } from '../errors/index.js'
import type {
  AdmitRefusal,
  AdmitResult,
  FairnessState,
  SharedBackendFigures,
  StateStore,
  StateStoreOptions,
  StoreHealth,
  WakeListener,
} from './contracts.js'
import { SCRIPTS, type ScriptName } from './redis-scripts.js'

const RECONNECT_MIN_MS = 100 // first retry after 0.1 s
const RECONNECT_MAX_MS = 1_000 // then at most every second, so admission recovers within ~1 s of Redis's return

interface RawFigures {
  b: string
  cap: number
  used: number
  seq: number
  ver: number
  o: Record<string, number> | unknown[]
}

function toFigures(raw: RawFigures): SharedBackendFigures {
  // cjson writes an empty Lua table as `{}` or `[]`: both mean no outstanding reservation.
  const byReplica = Array.isArray(raw.o) ? {} : raw.o
  return {
    backendId: raw.b,
    capacityTokens: raw.cap,
    usedTokens: raw.used,
    pollSeq: raw.seq,
    version: raw.ver,
    outstandingByReplica: byReplica,
  }
}

const list = <T>(value: unknown): T[] => (Array.isArray(value) ? (value as T[]) : [])
const optional = (value: number | undefined): string => (value === undefined ? '' : String(value))

/**
 * The shared books in Redis 7 / Valkey through ioredis. Each operation is one Lua script (redis-scripts.ts),
 * sent by EVALSHA and re-sent by ioredis when the server lost its script cache (a restart). Commands fail
 * fast while the server is unreachable (no offline queue, no retries, `commandTimeoutMs`): admission must
 * know at once that it has to fall back to degraded mode, not wait in a queue. The client reconnects by
 * itself; `onReconnect` tells the caller to re-sync. A second connection subscribes to the wake-up channel.
 */
export async function createRedisStateStore(options: StateStoreOptions): Promise<StateStore> {
  if (options.url === null) throw errors.invalidConfig(['state.url: required when state.store is redis'])
  const prefix = options.keyPrefix
  const connection = {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: options.commandTimeoutMs,
    connectTimeout: Math.max(1_000, options.commandTimeoutMs),
    retryStrategy: (attempt: number) => Math.min(RECONNECT_MIN_MS * attempt, RECONNECT_MAX_MS),
  }
  const client = new Redis(options.url, connection)
  // The subscriber queues its SUBSCRIBE until connected, and re-subscribes after a reconnect by itself.
  const subscriber = new Redis(options.url, { ...connection, enableOfflineQueue: true, commandTimeout: undefined })
  for (const [name, lua] of Object.entries(SCRIPTS)) client.defineCommand(name, { numberOfKeys: 0, lua })

  const wakeListeners: WakeListener[] = []
  const reconnectListeners: (() => void)[] = []
  const downListeners: ((error: string) => void)[] = []
  let up = false
  /** Ready once, or failed to connect at start: a later 'ready' is a recovery the caller must re-sync after. */
  let recovering = false
  let lastError: string | undefined
  let closed = false

  const markDown = (reason: string): void => {
    lastError = reason
    if (!up || closed) return
    up = false
    for (const listener of downListeners) listener(reason)
  }
  client.on('ready', () => {
    const recovered = recovering && !up
    up = true
    recovering = true
    lastError = undefined
    if (recovered) for (const listener of reconnectListeners) listener()
  })
  client.on('error', (err: Error) => markDown(err.message))
  client.on('close', () => markDown('connection closed'))
  // The subscriber's own errors: reconnecting is its business; the command connection reports health.
  subscriber.on('error', () => undefined)
  subscriber.on('message', (_channel: string, message: string) => {
    let figures: SharedBackendFigures[]
    try {
      figures = list<RawFigures>(JSON.parse(message)).map(toFigures)
    } catch {
      return
    }
    for (const listener of wakeListeners) listener(figures)
  })

  const call = async (name: ScriptName, args: readonly (string | number)[]): Promise<unknown> => {
    const command = (client as unknown as Record<ScriptName, (...a: (string | number)[]) => Promise<unknown>>)[name]
    try {
      return await command.call(client, prefix, ...args)
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err)
      // A script error is a bug, not an outage; anything else (timeout, closed stream) is the server gone.
      if (!/ERR|WRONGTYPE/.test(message)) markDown(message)
      throw err
    }
  }
  const json = async <T>(name: ScriptName, args: readonly (string | number)[]): Promise<T> =>
    JSON.parse(String(await call(name, args))) as T

  // A gateway that starts while Redis is down starts in degraded mode; the client keeps reconnecting.
  // Subscribed before the first command, so no wake-up after this store's first admission is missed.
  const subscribed = subscriber.subscribe(`${prefix}wake`)
  subscriber.connect().catch(() => undefined)
  try {
    await client.connect()
    await subscribed
  } catch (err) {
    recovering = true
    lastError = err instanceof Error ? err.message : String(err)
    subscribed.catch(() => undefined)
  }

  return {
    kind: 'redis',
    async admit(input): Promise<AdmitResult> {
      const fair = input.fairShare
      const reply = await json<{ r: string; f?: RawFigures; w?: number }>('kvgateAdmit', [
        input.backendId,
        input.requestId,
        input.replicaId,
        input.user,
        Math.ceil(input.promptTokens),
        Math.ceil(input.reservedTokens),
        input.headroomRatio,
        optional(fair?.weight),
        optional(fair?.wIn),
        optional(fair?.wOut),
        optional(input.quota?.tokensPerMinute),
        optional(input.quota?.requestsPerMinute),
        Math.round(input.nowMs),
      ])
      const figures = reply.f === undefined ? undefined : toFigures(reply.f)
      if (reply.r === 'ok' && figures !== undefined) return { admitted: true, figures }
      return {
        admitted: false,
        reason: reply.r as AdmitRefusal,
        ...(reply.w === undefined ? {} : { retryAfterMs: reply.w }),
        ...(figures === undefined ? {} : { figures }),
      }
    },
    async release(requestId, completionTokens, nowMs) {
      const tokens = Math.max(0, Math.round(completionTokens))
      const reply = await json<{ r: number }>('kvgateRelease', [requestId, tokens, Math.round(nowMs)])
      return reply.r === 1
    },
    async beginPoll(replicaId, backendId, progress) {
      const args: (string | number)[] = [replicaId, backendId]
      for (const p of progress) args.push(p.requestId, Math.ceil(p.heldTokens), Math.ceil(p.reservedTokens))
      return Number(await call('kvgateBeginPoll', args))
    },
    async completePoll(backendId, pollSeq, figures) {
      const raw = await json<RawFigures>('kvgateCompletePoll', [
        backendId,
        pollSeq,
        Math.round(figures.capacityTokens),
        Math.round(figures.usedTokens),
      ])
      return toFigures(raw)
    },
    async heartbeat(replicaId, leaseMs) {
      const [replicas, reaped] = list<number>(await call('kvgateHeartbeat', [replicaId, leaseMs]))
      return { replicas: Number(replicas ?? 0), reaped: Number(reaped ?? 0) }
    },
    async resync(replicaId, leaseMs, live) {
      const args: (string | number)[] = [replicaId, leaseMs]
      for (const r of live) {
        args.push(r.requestId, r.backendId, r.user, Math.ceil(r.promptTokens), Math.ceil(r.reservedTokens))
        args.push(Math.ceil(r.heldTokens))
      }
      await call('kvgateResync', args)
    },
    async noteHead(replicaId, user, needTokens) {
      await call('kvgateNoteHead', [replicaId, user, needTokens === undefined ? '' : Math.ceil(needTokens)])
    },
    async figures() {
      return list<RawFigures>(await json<unknown>('kvgateFigures', [])).map(toFigures)
    },
    async fairness(): Promise<FairnessState> {
      const counters: Record<string, number> = {}
      const raw = await client.hgetall(`${prefix}vtc`)
      for (const [user, value] of Object.entries(raw)) counters[user] = Number(value)
      const heads: Record<string, number> = {}
      for (const [field, value] of Object.entries(await client.hgetall(`${prefix}heads`))) {
        const user = field.slice(field.indexOf('|') + 1)
        heads[user] = Math.min(heads[user] ?? Number(value), Number(value))
      }
      return { counters, heads }
    },
    async quotaUsage(user, nowMs) {
      return await json<{ tokens: number; requests: number }>('kvgateQuotaUsage', [user, Math.round(nowMs)])
    },
    onWake(listener) {
      wakeListeners.push(listener)
    },
    onReconnect(listener) {
      reconnectListeners.push(listener)
    },
    onDown(listener) {
      downListeners.push(listener)
    },
    health: (): StoreHealth => ({ up, lastError }),
    async close() {
      closed = true
      wakeListeners.length = 0
      await Promise.allSettled([client.quit(), subscriber.quit()])
      client.disconnect()
      subscriber.disconnect()
    },
  }
}
