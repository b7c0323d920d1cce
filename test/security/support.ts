import { connect, type Socket } from 'node:net'
import { Writable } from 'node:stream'
import { type Logger, pino } from 'pino'
import { request } from 'undici'
import { parseConfig } from '../../src/config/index.js'
import type { Clock } from '../../src/core/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { startSim, type SimHandle, type SimOptions } from '../../src/sim/index.js'
import { until } from '../support/poll.js'

export { until } from '../support/poll.js'

/** Keys as an operator would write them; the secrets test greps every log line for each. */
export const ALICE_KEY = 'sk-alice-7f3a9c1e5b2d'
export const BOB_KEY = 'sk-bob-2d8e4f6a0c9b'
export const ADMIN_TOKEN = 'adm-4c1f9e7b2a6d8e3f'
export const KEYED_IDENTITY = {
  requireAuth: true,
  apiKeys: [
    { key: ALICE_KEY, user: 'alice' },
    { key: BOB_KEY, user: 'bob' },
  ],
}
export const ALICE = { authorization: `Bearer ${ALICE_KEY}` }

export interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
  /** The body as JSON (undefined when it is not). */
  json: unknown
}

function parseResponse(text: string): RawResponse {
  const split = text.indexOf('\r\n\r\n')
  const head = split === -1 ? text : text.slice(0, split)
  const rest = split === -1 ? '' : text.slice(split + 4)
  const [statusLine = '', ...lines] = head.split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  let body = rest
  if (headers['transfer-encoding'] === 'chunked') {
    body = ''
    let at = 0
    for (;;) {
      const eol = rest.indexOf('\r\n', at)
      if (eol === -1) break
      const size = Number.parseInt(rest.slice(at, eol), 16)
      if (!(size > 0)) break
      body += rest.slice(eol + 2, eol + 2 + size)
      at = eol + 2 + size + 2
    }
  } else if (headers['content-length'] !== undefined) {
    body = rest.slice(0, Number(headers['content-length']))
  }
  let json: unknown
  try {
    json = JSON.parse(body)
  } catch {
    json = undefined
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body, json }
}

/** Whether a whole response (head and its body) is in `text`. */
function complete(text: string): boolean {
  const split = text.indexOf('\r\n\r\n')
  if (split === -1) return false
  const response = parseResponse(text)
  if (response.headers['transfer-encoding'] === 'chunked') return text.endsWith('0\r\n\r\n')
  const length = Number(response.headers['content-length'] ?? 0)
  return Buffer.byteLength(text.slice(split + 4)) >= length
}

export interface RawExchange {
  readonly socket: Socket
  /** Resolves with the first whole response read from the socket. */
  readonly response: Promise<RawResponse>
  /** Bytes written so far, and whether the socket is still open for writing. */
  readonly sent: () => number
}

/**
 * Exact bytes to a server over a socket of its own: HTTP clients normalise paths (`new URL` resolves
 * `/v1/./chat`), so a test of kvgate's own reading of a path must write the request line itself. The body,
 * if any, is written as given; `chunks` are written one after the other, each once the previous drained.
 */
export function rawExchange(url: string, head: string, chunks: readonly (string | Buffer)[] = []): RawExchange {
  const { hostname, port } = new URL(url)
  const socket = connect(Number(port), hostname)
  let sent = 0
  let text = ''
  const response = new Promise<RawResponse>((resolve, reject) => {
    socket.on('data', (data: Buffer) => {
      text += data.toString('latin1')
      if (complete(text)) resolve(parseResponse(text))
    })
    socket.on('error', (err) => (complete(text) ? resolve(parseResponse(text)) : reject(err)))
    socket.on('close', () =>
      text === '' ? reject(new Error('closed without a response')) : resolve(parseResponse(text)),
    )
  })
  socket.on('connect', async () => {
    const write = (data: string | Buffer) =>
      new Promise<void>((resolve) => {
        if (socket.destroyed || !socket.writable) return resolve()
        sent += Buffer.byteLength(data)
        if (socket.write(data)) resolve()
        else socket.once('drain', () => resolve())
      })
    await write(head)
    for (const chunk of chunks) await write(chunk)
  })
  return { socket, response, sent: () => sent }
}

/** One request with an exact request-target and a JSON body; the socket is closed after the answer. */
export async function rawJson(
  url: string,
  method: string,
  target: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  const payload = body === undefined ? '' : JSON.stringify(body)
  const lines = [`${method} ${target} HTTP/1.1`, `host: ${new URL(url).host}`, 'connection: close']
  if (body !== undefined) lines.push('content-type: application/json', `content-length: ${Buffer.byteLength(payload)}`)
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`)
  const exchange = rawExchange(url, `${lines.join('\r\n')}\r\n\r\n${payload}`)
  try {
    return await exchange.response
  } finally {
    exchange.socket.destroy()
  }
}

/** The log lines a gateway wrote, parsed, for the secrets check and for what the gate logged. */
export function logSink(): { logger: Logger; lines: string[]; records(): Record<string, unknown>[] } {
  const lines: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(line)
      done()
    },
  })
  // No redaction of its own: what the lines hold is what kvgate wrote.
  const logger: Logger = pino({ level: 'trace' }, sink)
  return { logger, lines, records: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) }
}

export interface GuardedStack {
  readonly sim: SimHandle
  readonly gateway: Gateway
  readonly url: string
  readonly adminUrl: string
  readonly lines: string[]
  close(): Promise<void>
}

/** kvgate with keys in front of the real emulator, both on loopback; every log line kept. */
export async function startGuardedStack(
  options: { sim?: SimOptions; config?: Record<string, unknown>; clock?: Clock; simClock?: Clock } = {},
): Promise<GuardedStack> {
  const sim = await startSim(
    { speed: 20, numGpuBlocks: 256, logger: false, ...options.sim },
    options.simClock === undefined ? {} : { clock: options.simClock },
  )
  const raw = options.config ?? {}
  const config = parseConfig({
    identity: KEYED_IDENTITY,
    // Named users get their own metric label (`user="alice"`).
    users: [{ name: 'alice' }, { name: 'bob' }],
    ...raw,
    backends: [{ url: sim.url, name: 'sim0' }],
    metricsPoll: { intervalMs: 20, staleAfterMs: 2000, ...(raw['metricsPoll'] as object | undefined) },
    healthCheck: { intervalMs: 200, ...(raw['healthCheck'] as object | undefined) },
  })
  const { logger, lines } = logSink()
  const gateway = await createGateway({
    config,
    logger,
    ...(options.clock === undefined ? {} : { clock: options.clock }),
  })
  const url = await gateway.listen({ port: 0, host: '127.0.0.1' })
  await until(() => gateway.backends()[0]?.usable === true || undefined, { what: 'the emulator to be usable' })
  return {
    sim,
    gateway,
    url,
    adminUrl: gateway.adminUrl(),
    lines,
    async close() {
      await gateway.close()
      await sim.close()
    },
  }
}

/** A short chat body the emulator answers at once. */
export const chat = (content = 'hi', extra: Record<string, unknown> = {}) => ({
  model: 'kvgate-sim',
  messages: [{ role: 'user', content }],
  max_tokens: 4,
  ...extra,
})

/** The gateway still serves a normal request, and its ledger and queue are empty. */
export async function servesNormally(stack: { url: string; gateway: Gateway }): Promise<void> {
  const response = await request(`${stack.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...ALICE },
    body: JSON.stringify(chat()),
  })
  const text = await response.body.text()
  if (response.statusCode !== 200) throw new Error(`a normal request got ${response.statusCode}: ${text}`)
  await until(() => (stack.gateway.ledgerReservedTokens() === 0 && stack.gateway.queueDepth() === 0) || undefined)
}

/** One series' value from the admin listener's /metrics (labels as written). */
export async function metric(adminUrl: string, series: string): Promise<number | undefined> {
  const text = await (await request(`${adminUrl}/metrics`)).body.text()
  for (const line of text.split('\n')) if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1))
  return undefined
}
