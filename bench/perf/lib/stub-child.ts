import { createServer } from 'node:http'
import { serveUntilDisconnected } from './processes.js'

/**
 * A null upstream: answers completions at once, with a fixed body or a fixed number of SSE events, and a
 * /metrics page just rich enough for kvgate's poller. It has no engine at all, so the proxy in front of it is
 * the only real work; used with `--upstream stub` to see a proxy's ceiling when the emulator is the limit.
 */
const NUM_GPU_BLOCKS = 1_000_000
const BLOCK_SIZE = 16

const metrics = `# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="${BLOCK_SIZE}",num_gpu_blocks="${NUM_GPU_BLOCKS}",engine="0",model_name="stub"} 1.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="stub"} 0.0
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="stub"} 0.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="stub"} 0.0
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",model_name="stub"} 0.0
`

function completion(id: number, text: string, finish: string | null): string {
  return JSON.stringify({
    id: `cmpl-${id}`,
    object: 'text_completion',
    created: 0,
    model: 'stub',
    choices: [{ index: 0, text, logprobs: null, finish_reason: finish }],
  })
}

let next = 0
const { count = 1 } = JSON.parse(process.argv[2] ?? '{}') as { count?: number }

async function startStub(): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    if (req.method === 'GET') {
      if (req.url === '/metrics') res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(metrics)
      else if (req.url === '/v1/models')
        res
          .writeHead(200, { 'content-type': 'application/json' })
          // The model the perf clients name (targets.ts's PERF_MODEL): kvgate routes only to a backend serving it.
          .end('{"object":"list","data":[{"id":"perf-model","object":"model"}]}')
      else res.writeHead(200).end()
      return
    }
    const parts: Buffer[] = []
    req.on('data', (part: Buffer) => parts.push(part))
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(parts).toString() || '{}') as { stream?: boolean; max_tokens?: number }
      next += 1
      const id = next
      const tokens = body.max_tokens ?? 16
      if (!body.stream) {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(
          `${completion(id, ' hi'.repeat(tokens), 'length').slice(0, -1)},"usage":{"prompt_tokens":4,"completion_tokens":${tokens},"total_tokens":${tokens + 4}}}`,
        )
        return
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
      // One event per token, one event loop turn apart, as an engine step would produce them.
      let sent = 0
      const step = (): void => {
        if (res.destroyed) return
        sent += 1
        res.write(`data: ${completion(id, ' hi', sent === tokens ? 'length' : null)}\n\n`)
        if (sent < tokens) setImmediate(step)
        else res.end('data: [DONE]\n\n')
      }
      setImmediate(step)
    })
  })
  server.keepAliveTimeout = 60_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

// `count` stubs side by side, for the polling benchmark's 16 backends.
serveUntilDisconnected(async () => {
  const stubs = await Promise.all(Array.from({ length: count }, startStub))
  return {
    urls: stubs.map((stub) => stub.url),
    close: async () => {
      await Promise.all(stubs.map((stub) => stub.close()))
    },
  }
})
