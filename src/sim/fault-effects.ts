import { errors, type KvgateError } from '../errors/index.js'
import { formatFloat } from './exposition.js'
import type { FaultConfig, MetricOverrideValue } from './options.js'

/**
 * What the injected faults do to a response, kept apart from the routes so each is free when off: an
 * upstream that lies in `/metrics`, floods it, or answers through a broken proxy. The engine-side faults
 * (latency spikes, errors, cut streams) live where the engine and the streams are.
 */

const injected = new WeakSet<KvgateError>()

/** An error the emulator was told to produce: answered like any other, but not logged as a fault of its own. */
export function injectedFault(message: string): KvgateError {
  const err = errors.internal([`injected fault: ${message}`], { captureStack: false })
  injected.add(err)
  return err
}

export function isInjectedFault(err: unknown): boolean {
  return typeof err === 'object' && err !== null && injected.has(err as KvgateError)
}

/** What nginx answers when the server behind it is gone: the page an upstream's 502 most often is. */
export const BAD_GATEWAY_HTML =
  '<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n'

const renderOverride = (value: MetricOverrideValue): string => (typeof value === 'number' ? formatFloat(value) : value)

/** Every sample line of an overridden name reports the override, whatever its labels. */
export function overrideMetricValues(text: string, overrides: FaultConfig['metricsOverrides']): string {
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    if (line === '' || line.startsWith('#')) continue
    const nameEnd = line.search(/[{ ]/)
    const value = overrides[line.slice(0, nameEnd)]
    if (value === undefined) continue
    lines[i] = `${line.slice(0, line.lastIndexOf(' '))} ${renderOverride(value)}`
  }
  return lines.join('\n')
}

const PAD_LINE = '# kvgate sim: injected padding (faults.metricsPadBytes)\n'
let padCache = ''

/** The body grown with comment lines (still valid exposition) to at least `bytes`, for a flood. */
export function padMetrics(text: string, bytes: number): string {
  const missing = bytes - Buffer.byteLength(text)
  if (missing <= 0) return text
  // Built once per size and sliced after: a flooding upstream costs the emulator little per scrape.
  if (padCache.length < missing) padCache = PAD_LINE.repeat(Math.ceil(missing / PAD_LINE.length))
  return `${text}${padCache.slice(0, missing - 1)}\n`
}
