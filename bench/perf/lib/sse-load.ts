import { Pool } from 'undici'

/**
 * Keeps `streams` SSE completions open at once and counts the events that reach the client. Each stream that
 * ends is replaced at once, so the number in flight stays constant for the whole measurement.
 */
export interface StreamLoadOptions {
  readonly origin: string
  readonly path: string
  /** The request body; must ask for `stream: true`. */
  readonly body: unknown
  readonly headers?: Readonly<Record<string, string>>
  readonly streams: number
  readonly warmupMs: number
  readonly durationMs: number
  /** Called when the measured window opens and closes, to sample the CPU of the processes under test. */
  readonly onWindow?: (edge: 'start' | 'end') => void
}

export interface StreamLoadResult {
  /** SSE events (`data: …\n\n`, `[DONE]` included) received inside the measured window. */
  readonly chunks: number
  readonly chunksPerSecond: number
  readonly completedStreams: number
  readonly errors: number
}

const EVENT_END = Buffer.from('\n\n')

export async function runStreams(options: StreamLoadOptions): Promise<StreamLoadResult> {
  const pool = new Pool(options.origin, { connections: options.streams, pipelining: 1 })
  const payload = JSON.stringify(options.body)
  const headers = { 'content-type': 'application/json', accept: 'text/event-stream', ...options.headers }
  let recording = false
  let chunks = 0
  let completedStreams = 0
  let errors = 0
  let stopped = false

  const stream = async (): Promise<void> => {
    while (!stopped) {
      try {
        const response = await pool.request({ path: options.path, method: 'POST', headers, body: payload })
        if (response.statusCode !== 200) {
          await response.body.dump()
          if (recording) errors += 1
          continue
        }
        // An event may straddle two reads; keep the last byte so a split "\n" + "\n" still counts once.
        let carry = false
        for await (const part of response.body as AsyncIterable<Buffer>) {
          let events = 0
          const joined: boolean = carry && part[0] === 0x0a
          if (joined) events += 1
          for (let at = part.indexOf(EVENT_END); at !== -1; at = part.indexOf(EVENT_END, at + 2)) events += 1
          // A trailing "\n" opens a split "\n\n" unless it already closed one (in this part or with the carry).
          const closedAtEnd: boolean = part.length === 1 ? joined : part[part.length - 2] === 0x0a
          carry = part[part.length - 1] === 0x0a && !closedAtEnd
          if (recording) chunks += events
          if (stopped) break
        }
        if (recording) completedStreams += 1
      } catch {
        if (recording && !stopped) errors += 1
      }
    }
  }

  const running = Array.from({ length: options.streams }, stream)
  await new Promise((resolve) => setTimeout(resolve, options.warmupMs))
  options.onWindow?.('start')
  recording = true
  const openedAt = performance.now()
  await new Promise((resolve) => setTimeout(resolve, options.durationMs))
  recording = false
  const seconds = (performance.now() - openedAt) / 1000
  options.onWindow?.('end')
  stopped = true
  // Streams still open are cut: destroying the pool aborts them rather than waiting for their tokens.
  await pool.destroy()
  await Promise.allSettled(running)
  return { chunks, chunksPerSecond: chunks / seconds, completedStreams, errors }
}
