import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/** One chat request as the server received it. */
export interface RecordedRequest {
  url: string
  headers: IncomingMessage['headers']
  body: Record<string, unknown>
}

/**
 * A small OpenAI-compatible chat server on loopback that records what the bench sends: every request's headers
 * and body. By default it streams an answer as vLLM would, as long as the emulator's out-of-band length, else
 * `max_tokens`, else 4 tokens, with the usage chunk; `respond` lets a test take over (hold an answer, answer 429).
 */
export interface RecordingServer {
  url: string
  requests: RecordedRequest[]
  /** Return true when the test answered (or will answer) `res` itself. */
  respond?: (request: RecordedRequest, res: ServerResponse) => boolean
  /** Requests being answered right now, and the most there ever were at once. */
  inFlight: number
  maxInFlight: number
  close(): Promise<void>
}

export function streamAnswer(res: ServerResponse, body: Record<string, unknown>, delayMs = 0): void {
  const xargs = body['vllm_xargs'] as Record<string, unknown> | undefined
  const tokens = Number(xargs?.['kvgate_sim_output_tokens'] ?? body['max_tokens'] ?? 4)
  const messages = (body['messages'] as { content: string }[] | undefined) ?? []
  const base = { id: 'chatcmpl-r', object: 'chat.completion.chunk', created: 1, model: String(body['model']) }
  res.writeHead(200, { 'content-type': 'text/event-stream' })
  const rest = (): void => {
    for (let i = 0; i < tokens; i++) {
      const choice = { index: 0, delta: { content: ' word' }, finish_reason: i === tokens - 1 ? 'stop' : null }
      res.write(`data: ${JSON.stringify({ ...base, choices: [choice] })}\n\n`)
    }
    // A prompt count the bench cannot have made up: 1000 + the number of messages.
    const usage = { prompt_tokens: 1000 + messages.length, completion_tokens: tokens, total_tokens: 0 }
    res.write(`data: ${JSON.stringify({ ...base, choices: [], usage })}\n\n`)
    res.end('data: [DONE]\n\n')
  }
  if (delayMs > 0) setTimeout(rest, delayMs)
  else rest()
}

export async function startRecordingServer(): Promise<RecordingServer> {
  let server: Server | undefined
  const recording: RecordingServer = {
    url: '',
    requests: [],
    inFlight: 0,
    maxInFlight: 0,
    close: async () => {
      server?.closeAllConnections()
      await new Promise((resolve) => server?.close(resolve))
    },
  }
  server = createServer((req, res) => {
    if (req.url === '/v1/models') {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'recorded' }] }))
      return
    }
    let text = ''
    req.on('data', (d: Buffer) => {
      text += d.toString()
    })
    req.on('end', () => {
      const request = { url: req.url ?? '', headers: req.headers, body: JSON.parse(text) as Record<string, unknown> }
      recording.requests.push(request)
      recording.inFlight++
      recording.maxInFlight = Math.max(recording.maxInFlight, recording.inFlight)
      res.on('close', () => {
        recording.inFlight--
      })
      if (recording.respond?.(request, res) === true) return
      streamAnswer(res, request.body)
    })
  })
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve))
  recording.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return recording
}
