/**
 * A targeted reader of Prometheus text exposition, for the handful of vLLM series the poller needs. vLLM's
 * /metrics runs to hundreds of histogram lines; polled every 100 ms per backend, a full parser building
 * every bucket is wasted work, so this one keeps only the names it is asked for.
 */
export interface Sample {
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

const LABEL = /([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?\s*/gy

function unescapeLabel(value: string): string {
  return value.replace(/\\(.)/g, (_m, ch: string) => (ch === 'n' ? '\n' : ch))
}

function parseLabels(text: string): Record<string, string> | undefined {
  const labels: Record<string, string> = {}
  LABEL.lastIndex = 0
  while (LABEL.lastIndex < text.length) {
    const match = LABEL.exec(text)
    if (match === null) return undefined
    labels[match[1] as string] = unescapeLabel(match[2] as string)
  }
  return labels
}

function parseValue(text: string): number {
  if (text === '+Inf') return Infinity
  if (text === '-Inf') return -Infinity
  return Number(text)
}

/** Samples of the `wanted` metric names, by name; lines of other names are skipped without parsing. */
export function parsePrometheusText(text: string, wanted: ReadonlySet<string>): Map<string, Sample[]> {
  const out = new Map<string, Sample[]>()
  let start = 0
  while (start < text.length) {
    let end = text.indexOf('\n', start)
    if (end === -1) end = text.length
    const line = text.slice(start, end).trim()
    start = end + 1
    if (line.length === 0 || line.startsWith('#')) continue
    const nameEnd = line.search(/[{\s]/)
    if (nameEnd <= 0) continue
    const name = line.slice(0, nameEnd)
    if (!wanted.has(name)) continue
    let labels: Record<string, string> | undefined = {}
    let rest = line.slice(nameEnd)
    if (rest.startsWith('{')) {
      // Label values may contain `}`; the block ends at the last `}` before the value.
      const close = rest.lastIndexOf('}')
      if (close === -1) continue
      labels = parseLabels(rest.slice(1, close))
      rest = rest.slice(close + 1)
    }
    if (labels === undefined) continue
    const valueText = rest.trim().split(/\s+/)[0] ?? ''
    const value = parseValue(valueText)
    if (Number.isNaN(value) && valueText !== 'NaN') continue
    let samples = out.get(name)
    if (samples === undefined) {
      samples = []
      out.set(name, samples)
    }
    samples.push({ labels, value })
  }
  return out
}
