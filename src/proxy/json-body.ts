import type { FastifyInstance } from 'fastify'
import sjson from 'secure-json-parse'
import type { KvgateConfig } from '../config/index.js'
import type { Clock } from '../core/index.js'
import { errors, type KvgateError } from '../errors/index.js'

export type BodyLimits = Pick<
  KvgateConfig['limits'],
  'bodyLimitBytes' | 'maxJsonDepth' | 'maxJsonElements' | 'bodyTimeoutMs'
>

// A refusal mid-body leaves the rest unread: the connection cannot carry another request after it.
const CLOSE = { connection: 'close' } as const

/**
 * A one-pass scanner of JSON text as it arrives, byte by byte, that stops at the first byte breaking a
 * limit: the nesting depth of arrays and objects, and the number of elements (array items and object
 * members, counted by their separators). It does not check the grammar (JSON.parse does, once the body is
 * whole and known to be bounded); it only has to know whether it is inside a string.
 *
 * Why before JSON.parse: a 2 MB body of `[[[[…` parses in V8 without trouble, but what comes after it (the
 * validator, the token counter, the upstream's own parser) recurses, and a million tiny elements cost far
 * more memory than their bytes. Refused here, such a body costs the bytes read until the limit, no more.
 */
export interface JsonScanner {
  /** Scan the next chunk; a description of the broken limit, or undefined. */
  push(chunk: Uint8Array): string | undefined
}

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_ARRAY = 0x5b
const OPEN_OBJECT = 0x7b
const CLOSE_ARRAY = 0x5d
const CLOSE_OBJECT = 0x7d
const COMMA = 0x2c

// Inside a string, this many bytes are read one by one before the scan jumps to the next quote or backslash
// with indexOf: dense escapes are cheaper read, long text (most of a prompt) cheaper jumped over.
const LINEAR_STRING_BYTES = 16

export function createJsonScanner(limits: Pick<BodyLimits, 'maxJsonDepth' | 'maxJsonElements'>): JsonScanner {
  const { maxJsonDepth, maxJsonElements } = limits
  let inString = false
  let escaped = false
  let depth = 0
  let elements = 0
  return {
    push(chunk) {
      const length = chunk.length
      let i = 0
      // The next quote and backslash at or after i in this chunk (-1: none), found once and reused until
      // passed, so a long string with many escapes is not searched to its end once per escape.
      let quote = -2
      let backslash = -2
      while (i < length) {
        if (inString) {
          const stop = Math.min(length, i + LINEAR_STRING_BYTES)
          for (; i < stop; i++) {
            const byte = chunk[i] as number
            if (escaped) escaped = false
            else if (byte === BACKSLASH) escaped = true
            else if (byte === QUOTE) {
              inString = false
              break
            }
          }
          if (!inString) {
            i++
            continue
          }
          if (i >= length || escaped) continue
          if (quote !== -1 && quote < i) quote = chunk.indexOf(QUOTE, i)
          if (backslash !== -1 && backslash < i) backslash = chunk.indexOf(BACKSLASH, i)
          if (quote === -1 && backslash === -1) return undefined // the string goes on in the next chunk
          if (backslash !== -1 && (quote === -1 || backslash < quote)) {
            escaped = true
            i = backslash + 1
          } else {
            inString = false
            i = quote + 1
          }
          continue
        }
        for (; i < length; i++) {
          const byte = chunk[i] as number
          if (byte === QUOTE) {
            inString = true
            i++
            break
          }
          if (byte === OPEN_ARRAY || byte === OPEN_OBJECT) {
            if (++depth > maxJsonDepth) return `arrays and objects nest deeper than ${maxJsonDepth} levels`
            if (++elements > maxJsonElements) return `it has more than ${maxJsonElements} elements`
          } else if (byte === CLOSE_ARRAY || byte === CLOSE_OBJECT) depth--
          else if (byte === COMMA && ++elements > maxJsonElements) return `it has more than ${maxJsonElements} elements`
        }
      }
      return undefined
    },
  }
}

type BodyDone = (error: KvgateError | null, body?: unknown) => void

interface BoundedRead {
  readonly clock: Clock
  readonly limits: BodyLimits
  /** Scan each chunk as it arrives; a broken limit's description stops the read. */
  readonly scanner?: JsonScanner
  /** The whole body, once it arrived within every limit. */
  whole(body: Buffer): unknown
}

/**
 * Read a body under the limits: a declared length above `bodyLimitBytes` is refused (413) before a byte is
 * read; each chunk is counted and scanned as it arrives and the read stops at the one that breaks a limit;
 * a body still incomplete after `bodyTimeoutMs` on the clock is refused 408 (a client sending 10 bytes every
 * 5 s no longer holds a socket forever). Every refusal closes the connection: the rest stays unread.
 */
function readBounded(
  headers: Readonly<Record<string, unknown>>,
  payload: NodeJS.ReadableStream,
  read: BoundedRead,
  done: BodyDone,
): void {
  const { clock, limits } = read
  if (Number(headers['content-length']) > limits.bodyLimitBytes) {
    done(errors.payloadTooLarge([limits.bodyLimitBytes], { headers: CLOSE }))
    return
  }
  const chunks: Buffer[] = []
  let bytes = 0
  let settled = false
  const settle = (error: KvgateError | null, body?: unknown): void => {
    if (settled) return
    settled = true
    clock.clearTimeout(timer)
    payload.off('data', onData)
    payload.off('end', onEnd)
    payload.off('error', onError)
    payload.off('close', onClose)
    // Stop reading what is refused: the response closes the connection.
    if (error !== null) payload.pause()
    done(error, body)
  }
  const timer = clock.setTimeout(
    () => settle(errors.requestTimeout([limits.bodyTimeoutMs], { headers: CLOSE })),
    limits.bodyTimeoutMs,
  )
  const onData = (chunk: Buffer): void => {
    bytes += chunk.length
    if (bytes > limits.bodyLimitBytes) {
      settle(errors.payloadTooLarge([limits.bodyLimitBytes], { headers: CLOSE }))
      return
    }
    const problem = read.scanner?.push(chunk)
    if (problem !== undefined) settle(errors.jsonTooComplex([problem], { headers: CLOSE }))
    else chunks.push(chunk)
  }
  const onEnd = (): void => {
    try {
      settle(null, read.whole(Buffer.concat(chunks, bytes)))
    } catch (err) {
      settle(err as KvgateError)
    }
  }
  const onError = (err: Error): void => settle(errors.invalidJson([err.message], { cause: err, headers: CLOSE }))
  // The client went away mid-body: nobody will read an answer; the lifecycle sees the close as well.
  const onClose = (): void => settle(errors.requestCancelled(['was being sent'], { captureStack: false }))
  payload.on('data', onData)
  payload.on('end', onEnd)
  payload.on('error', onError)
  payload.on('close', onClose)
}

/**
 * V8's parse errors quote a stretch of the input (`Unexpected token 's', "{"key": sk-alice…" is not valid
 * JSON`): the reason is kept, the quote is not, so a body's secret never comes back in an error message.
 */
function parseError(message: string): string {
  return message.replace(/, ".*" is not valid JSON$/s, '').replace(/^(Unexpected token) '.'/, '$1')
}

/** A whole JSON body: refused when empty, parsed with prototype poisoning refused (as Fastify's parser does). */
function parseJson(body: Buffer): unknown {
  const text = body.toString('utf8')
  if (text.trim() === '') throw errors.invalidJson(['the body is empty'])
  try {
    return sjson.parse(text, { protoAction: 'error', constructorAction: 'error' })
  } catch (err) {
    throw errors.invalidJson([parseError((err as Error).message)], { cause: err })
  }
}

export interface BodyParserOptions {
  readonly clock: Clock
  limits(): BodyLimits
}

/**
 * kvgate's JSON body parser, in place of Fastify's (and of its `text/plain` one: vLLM takes JSON only):
 * bounded while the body arrives, not after. Only a whole body within every limit reaches `JSON.parse`.
 */
export function registerJsonBodyParser(app: FastifyInstance, options: BodyParserOptions): void {
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/json', (request, payload, done) => {
    const limits = options.limits()
    const read = { clock: options.clock, limits, scanner: createJsonScanner(limits), whole: parseJson }
    readBounded(request.headers, payload, read, done)
  })
}

/**
 * For allow-listed pass-through routes, whose bodies kvgate does not read (multipart audio, anything): any
 * content type, kept as bytes under the same size and time limits, forwarded as they came.
 */
export function registerRawBodyParser(app: FastifyInstance, options: BodyParserOptions): void {
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (request, payload, done) => {
    readBounded(request.headers, payload, { clock: options.clock, limits: options.limits(), whole: (b) => b }, done)
  })
}
