/**
 * The one reading of a request's path. kvgate routes on it, and forwards it, so what it decided on is what
 * the backend receives.
 *
 * vLLM's server is uvicorn + Starlette: uvicorn percent-decodes the path once (`urllib.parse.unquote`, so
 * `%63hat` is `chat` and `%2F` is `/`), and Starlette matches the decoded path, case-sensitively, and
 * redirects a path that only lacks or has a trailing slash to the route (307). Neither resolves dot segments
 * nor repeated slashes, but proxies and URL parsers on the way do (WHATWG's URL turns `/v1/./chat` into
 * `/v1/chat`). kvgate takes the widest reading: decode once, resolve `.` and `..`, collapse repeated
 * slashes, drop a trailing slash; and sends upstream that path re-encoded, so uvicorn's one decoding gives
 * back exactly the path kvgate routed. A spelling can then only reach the route it normalises to.
 */
export interface RequestTarget {
  /** Decoded and normalised: `/v1/chat/completions` for `/v1/./%63hat//completions/`. */
  readonly path: string
  /** `path` percent-encoded where needed, so one decoding (uvicorn's, find-my-way's) gives `path` back. */
  readonly encodedPath: string
  /** The query as the client sent it, with its `?`, or ''. kvgate reads nothing from it. */
  readonly search: string
}

const MAX_TARGET_LENGTH = 8192 // characters: no vLLM route comes near; Node caps the whole head at 16 KiB anyway
const HEX = /^[0-9A-Fa-f]{2}$/
// Characters a path segment may hold unencoded (RFC 3986 pchar without '%'): everything else is encoded.
const SEGMENT_SAFE = /^[A-Za-z0-9\-._~!$&'()*+,;=:@]$/
const utf8 = new TextDecoder('utf-8', { fatal: true })
const utf8Encoder = new TextEncoder()

/** The request-target's path part: origin-form as is, absolute-form without its scheme and authority. */
function pathPart(target: string): string | undefined {
  if (target.startsWith('/')) return target
  const absolute = /^https?:\/\/[^/?#]*/i.exec(target)
  if (absolute === null) return undefined // `*` (OPTIONS) and anything else a route cannot be
  const rest = target.slice(absolute[0].length)
  return rest.startsWith('/') ? rest : `/${rest}`
}

/** Percent-decode once, as UTF-8; undefined for bytes that are not UTF-8 or decode to a control character. */
function decode(raw: string): string | undefined {
  if (!raw.includes('%')) return raw
  const bytes: number[] = []
  for (let i = 0; i < raw.length; i++) {
    const ch = raw.charCodeAt(i)
    const hex = raw.slice(i + 1, i + 3)
    if (ch === 0x25 && HEX.test(hex)) {
      bytes.push(Number.parseInt(hex, 16))
      i += 2
    } else {
      bytes.push(ch) // a lone '%' stays, as Python's unquote leaves it
    }
  }
  try {
    return utf8.decode(new Uint8Array(bytes))
  } catch {
    return undefined
  }
}

function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code < 0x20 || code === 0x7f) return true
  }
  return false
}

/** RFC 3986's remove_dot_segments, with empty segments (repeated slashes) and a trailing slash dropped too. */
function resolveSegments(path: string): string[] {
  const out: string[] = []
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue
    if (segment === '..') out.pop()
    else out.push(segment)
  }
  return out
}

function encodeSegment(segment: string): string {
  let out = ''
  for (const ch of segment) {
    if (SEGMENT_SAFE.test(ch)) out += ch
    else for (const byte of utf8Encoder.encode(ch)) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}

/**
 * Read a request-target (`req.url`). Undefined when it cannot be a route: not a path, too long, a byte
 * outside printable ASCII, or a percent-encoding that decodes to something that is not printable UTF-8
 * (uvicorn would route such a path too, to a 404; kvgate answers the 404 itself).
 */
export function readRequestTarget(target: string): RequestTarget | undefined {
  if (target.length > MAX_TARGET_LENGTH) return undefined
  const raw = pathPart(target)
  if (raw === undefined) return undefined
  // A fragment never travels in HTTP; uvicorn's parser splits one off like the query.
  const end = raw.search(/[?#]/)
  const rawPath = end === -1 ? raw : raw.slice(0, end)
  const hash = raw.indexOf('#')
  const search = end === -1 || raw[end] === '#' ? '' : raw.slice(end, hash === -1 ? undefined : hash)
  // The raw target is ASCII on the wire; anything else is a client kvgate need not understand.
  if (!/^[!-~]*$/.test(rawPath)) return undefined
  const decoded = decode(rawPath)
  if (decoded === undefined || hasControlCharacter(decoded)) return undefined
  const segments = resolveSegments(decoded)
  return {
    path: `/${segments.join('/')}`,
    encodedPath: `/${segments.map(encodeSegment).join('/')}`,
    search,
  }
}
