import { request } from 'undici'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { createSeededRandom, parseSseData } from '../../src/core/index.js'
import { buildText } from '../../src/tokens/index.js'
import { until } from '../support/poll.js'

/** Shared helpers for the emulator's tests: SSE reading, metrics parsing, polling. */

export interface StreamResult {
  status: number
  /** Parsed `data:` payloads before `[DONE]`. */
  events: Array<Record<string, unknown>>
  done: boolean
  raw: string
}

// biome-ignore lint/suspicious/noExplicitAny: tests read whatever the emulator answered and assert on it
export async function postJson(url: string, body: unknown): Promise<{ status: number; json: any; text: string }> {
  const res = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  const text = await res.body.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.statusCode, json, text }
}

/** POST a streaming request and read the whole SSE body. */
export async function stream(url: string, body: unknown): Promise<StreamResult> {
  const res = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  const raw = await res.body.text()
  const events: Array<Record<string, unknown>> = []
  let done = false
  for (const data of parseSseData(raw)) {
    if (data === '[DONE]') done = true
    else events.push(JSON.parse(data) as Record<string, unknown>)
  }
  return { status: res.statusCode, events, done, raw }
}

export interface Sample {
  labels: Record<string, string>
  value: number
}

export interface MetricFamily {
  name: string
  type: string
  metrics: Array<{
    labels?: Record<string, string>
    value?: string
    buckets?: Record<string, string>
    count?: string
    sum?: string
  }>
}

export async function scrape(baseUrl: string): Promise<Map<string, MetricFamily>> {
  const res = await request(`${baseUrl}/metrics`)
  const text = await res.body.text()
  const families = parsePrometheusTextFormat(text) as MetricFamily[]
  return new Map(families.map((f) => [f.name, f]))
}

/** The single sample's value of a gauge or counter family. */
export function sampleValue(families: Map<string, MetricFamily>, name: string): number {
  const family = families.get(name)
  if (family === undefined) throw new Error(`metric ${name} missing`)
  return Number(family.metrics[0]?.value)
}

/** Poll `check` until it returns true (the shared poll, test/support/poll.ts, with the emulator tests' 5 ms). */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  await until(async () => ((await check()) ? true : undefined), { timeoutMs, what, intervalMs: 5 })
}

/** A completion prompt of exactly `tokens` tokens. */
export function promptOf(tokens: number, seed = 1): string {
  return buildText(tokens, createSeededRandom(seed))
}
