import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

/** One span as OTLP/HTTP JSON carries it, attributes flattened to plain values. */
export interface ReceivedSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly name: string
  readonly kind: number
  readonly status: { code?: number; message?: string }
  readonly attributes: Readonly<Record<string, string | number | boolean>>
  readonly resource: Readonly<Record<string, string | number | boolean>>
}

interface OtlpValue {
  stringValue?: string
  intValue?: string | number
  doubleValue?: number
  boolValue?: boolean
}
type OtlpAttributes = { key: string; value: OtlpValue }[] | undefined

const flatten = (attributes: OtlpAttributes): Record<string, string | number | boolean> => {
  const out: Record<string, string | number | boolean> = {}
  for (const { key, value } of attributes ?? []) {
    if (value.stringValue !== undefined) out[key] = value.stringValue
    else if (value.intValue !== undefined) out[key] = Number(value.intValue)
    else if (value.doubleValue !== undefined) out[key] = value.doubleValue
    else if (value.boolValue !== undefined) out[key] = value.boolValue
  }
  return out
}

/** An OTLP/HTTP trace receiver on loopback that decodes the JSON export requests it is sent. */
export interface OtlpReceiver {
  readonly url: string
  readonly spans: ReceivedSpan[]
  /** Export requests received, spans or not. */
  readonly requests: { headers: IncomingHttpHeaders; contentType: string | undefined }[]
  close(): Promise<void>
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = []
  const requests: OtlpReceiver['requests'] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      requests.push({ headers: req.headers, contentType: req.headers['content-type'] })
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans?: {
          resource?: { attributes?: OtlpAttributes }
          scopeSpans?: {
            spans?: {
              traceId: string
              spanId: string
              parentSpanId?: string
              name: string
              kind: number
              status?: { code?: number; message?: string }
              attributes?: OtlpAttributes
            }[]
          }[]
        }[]
      }
      for (const resourceSpans of body.resourceSpans ?? []) {
        const resource = flatten(resourceSpans.resource?.attributes)
        for (const scope of resourceSpans.scopeSpans ?? []) {
          for (const span of scope.spans ?? []) {
            spans.push({
              traceId: span.traceId,
              spanId: span.spanId,
              parentSpanId: span.parentSpanId === '' ? undefined : span.parentSpanId,
              name: span.name,
              kind: span.kind,
              status: span.status ?? {},
              attributes: flatten(span.attributes),
              resource,
            })
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  return { url: await listen(server), spans, requests, close: () => closeServer(server) }
}

/** A pass-through in front of a backend that keeps the headers of every POST it forwards. */
export interface RecordingForwarder {
  readonly url: string
  readonly posts: { path: string; headers: IncomingHttpHeaders }[]
  close(): Promise<void>
}

export async function startRecordingForwarder(target: string): Promise<RecordingForwarder> {
  const posts: RecordingForwarder['posts'] = []
  const upstream = new URL(target)
  const server = createServer((req, res) => {
    if (req.method === 'POST') posts.push({ path: req.url ?? '', headers: req.headers })
    const forwarded = httpRequest(
      { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      },
    )
    forwarded.on('error', () => res.destroy())
    req.pipe(forwarded)
  })
  return { url: await listen(server), posts, close: () => closeServer(server) }
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections()
  return new Promise((resolve) => server.close(() => resolve()))
}
