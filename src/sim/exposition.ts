/**
 * Prometheus text exposition written the way Python's `prometheus_client` writes it (vLLM's `/metrics`):
 * floats as Python prints them, labels in alphabetical order, counters as `_total` plus a `_created` gauge,
 * histograms with cumulative buckets. Written by hand rather than with prom-client, so a scraper that reads a
 * real vLLM reads the emulator byte for byte the same.
 */

/** A Prometheus histogram: per-bucket counts (non-cumulative until rendered), sum and count. */
export class Histogram {
  readonly bounds: readonly number[]
  readonly #counts: Float64Array
  #sum = 0
  #count = 0

  constructor(bounds: readonly number[]) {
    this.bounds = bounds
    this.#counts = new Float64Array(bounds.length)
  }

  observe(value: number): void {
    this.#sum += value
    this.#count++
    // Buckets are short (≤ 22); a linear scan beats a binary search at this size.
    const bounds = this.bounds
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.#counts[i]!++
        return
      }
    }
  }

  get count(): number {
    return this.#count
  }

  get sum(): number {
    return this.#sum
  }

  /** `labels` renders a label set with `le` merged in alphabetical order (prometheus_client sorts them). */
  render(name: string, labels: (le?: string) => string, out: string[]): void {
    let cumulative = 0
    for (let i = 0; i < this.bounds.length; i++) {
      cumulative += this.#counts[i]!
      out.push(`${name}_bucket{${labels(formatFloat(this.bounds[i]!))}} ${formatFloat(cumulative)}`)
    }
    out.push(`${name}_bucket{${labels('+Inf')}} ${formatFloat(this.#count)}`)
    out.push(`${name}_count{${labels()}} ${formatFloat(this.#count)}`)
    out.push(`${name}_sum{${labels()}} ${formatFloat(this.#sum)}`)
  }
}

/** Python's `repr(float)`: integers keep `.0`, exponents below 1e-4 and from 1e16, two-digit exponents. */
function pythonRepr(value: number): string {
  if (Number.isInteger(value) && Math.abs(value) < 1e16) return `${value}.0`
  const abs = Math.abs(value)
  if (abs !== 0 && (abs < 1e-4 || abs >= 1e16)) {
    const [mantissa, exponent] = value.toExponential().split('e') as [string, string]
    const sign = exponent.startsWith('-') ? '-' : '+'
    return `${mantissa}e${sign}${exponent.replace(/^[+-]/, '').padStart(2, '0')}`
  }
  return String(value)
}

/**
 * prometheus_client's `floatToGoString`: Python's repr, except that positive values with more than six
 * digits before the point switch to Go's exponent form (`1234567.0` → `1.234567e+06`), as vLLM's counters
 * and `_created` timestamps appear on a real `/metrics`.
 */
export function formatFloat(value: number): string {
  if (value === Number.POSITIVE_INFINITY) return '+Inf'
  if (value === Number.NEGATIVE_INFINITY) return '-Inf'
  if (Number.isNaN(value)) return 'NaN'
  const repr = pythonRepr(value)
  const dot = repr.indexOf('.')
  if (value > 0 && dot > 6 && !repr.includes('e')) {
    const mantissa = `${repr[0]}.${repr.slice(1, dot)}${repr.slice(dot + 1)}`.replace(/[0.]+$/, '')
    return `${mantissa}e+0${dot - 1}`
  }
  return repr
}

export function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
}

type Labels = Readonly<Record<string, string>> | undefined

/** One sample: its model, any labels besides `engine` and `model_name`, and its value. */
export type Sample<T> = readonly [model: string, extra: Labels, value: T]

/** Renders `# HELP`/`# TYPE` blocks; every series carries `engine="0"` and its `model_name`. */
export class Exposition {
  readonly out: string[] = []
  readonly #created: string

  constructor(createdSeconds: number) {
    this.#created = formatFloat(createdSeconds)
  }

  /** The common labels with any extra ones, in alphabetical order. */
  labels(model: string, extra?: Labels): string {
    const pairs: Array<[string, string]> = [
      ['engine', '0'],
      ['model_name', escapeLabel(model)],
    ]
    if (extra !== undefined) for (const [key, value] of Object.entries(extra)) pairs.push([key, escapeLabel(value)])
    pairs.sort((a, b) => (a[0] < b[0] ? -1 : 1))
    return pairs.map(([key, value]) => `${key}="${value}"`).join(',')
  }

  gauge(name: string, help: string, samples: ReadonlyArray<Sample<number>>): void {
    this.out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`)
    for (const [model, extra, value] of samples)
      this.out.push(`${name}{${this.labels(model, extra)}} ${formatFloat(value)}`)
  }

  /** A counter (`base_total`) with one sample per label set, then its `base_created` gauge. */
  counter(base: string, help: string, samples: ReadonlyArray<Sample<number>>): void {
    this.out.push(`# HELP ${base}_total ${help}`, `# TYPE ${base}_total counter`)
    for (const [model, extra, value] of samples) {
      this.out.push(`${base}_total{${this.labels(model, extra)}} ${formatFloat(value)}`)
    }
    this.#createdSeries(base, help, samples)
  }

  histogram(name: string, help: string, samples: ReadonlyArray<Sample<Histogram>>): void {
    this.out.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`)
    for (const [model, extra, h] of samples) {
      h.render(name, (le) => this.labels(model, le === undefined ? extra : { ...extra, le }), this.out)
    }
    this.#createdSeries(name, help, samples)
  }

  #createdSeries(base: string, help: string, samples: ReadonlyArray<Sample<unknown>>): void {
    this.out.push(`# HELP ${base}_created ${help}`, `# TYPE ${base}_created gauge`)
    for (const [model, extra] of samples)
      this.out.push(`${base}_created{${this.labels(model, extra)}} ${this.#created}`)
  }
}
