/**
 * Line and bar charts as inline SVG strings: the HTML report must open on a machine without network, so no
 * chart library from a CDN, and a bundled one would outweigh these two hundred lines. Each line series is
 * one `<path class="series">` and each bar one `<rect class="bar">`, which the report's render check and
 * the Chromium tests look for. Every chart carries its y-axis top as `data-y-max`, so a test can check that
 * charts meant to be compared share a scale.
 */
export interface Series {
  name: string
  points: readonly (readonly [number, number])[]
  /** Draw as steps (a CDF, a counter) rather than straight segments. */
  step?: boolean
  /** A fixed colour (see `colourFor`); by default the palette in series order. */
  colour?: string
}

export interface LineChartOptions {
  title: string
  xLabel: string
  yLabel: string
  series: readonly Series[]
  width?: number
  height?: number
  yMax?: number
  xMax?: number
  /** Format tick labels; defaults to compact numbers. */
  yFormat?: (v: number) => string
  xFormat?: (v: number) => string
}

/** A colour-blind-safe palette (Okabe–Ito), in series order. */
export const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#F0E442', '#000000'] as const

/**
 * One colour per setup or policy name, the same in every report: `direct` is always black, kvgate's
 * policies and the tier policies have their own, and any other name hashes into the rest (yellow left out:
 * it barely shows on white).
 */
const NAMED_COLOURS: Record<string, string> = {
  direct: '#000000',
  fifo: '#0072B2',
  vtc: '#D55E00',
  'dynamic-tpm': '#009E73',
  tpm: '#CC79A7',
  lru: '#E69F00',
  'queue-aware': '#56B4E9',
  belady: '#882255',
}
const HASHED_COLOURS = [
  '#0072B2',
  '#D55E00',
  '#009E73',
  '#CC79A7',
  '#E69F00',
  '#56B4E9',
  '#882255',
  '#44AA99',
  '#999933',
]

export function colourFor(name: string): string {
  const named = NAMED_COLOURS[name]
  if (named !== undefined) return named
  // FNV-1a: stable across runs and platforms, unlike anything keyed on iteration order.
  let hash = 0x811c9dc5
  for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193) >>> 0
  return HASHED_COLOURS[hash % HASHED_COLOURS.length] as string
}

/** The i-th of n colours from light to dark blue, for ordered series such as the hours of a day. */
export function rampColour(i: number, n: number): string {
  const t = n > 1 ? i / (n - 1) : 1
  const mix = (a: number, b: number) => Math.round(a + (b - a) * t)
  const [r, g, b] = [mix(0x9e, 0x08), mix(0xca, 0x30), mix(0xe1, 0x6b)]
  return `#${[r, g, b].map((v) => v.toString(16).padStart(2, '0')).join('')}`
}

const MARGIN = { top: 28, right: 130, bottom: 40, left: 60 }

export function escapeXml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  )
}

/** 1, 2 or 5 × 10^k steps giving about `count` ticks, the last at or above max. */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0]
  const raw = max / count
  const power = 10 ** Math.floor(Math.log10(raw))
  const step = ([1, 2, 5, 10].find((m) => m * power >= raw) ?? 10) * power
  const ticks: number[] = []
  // The last tick is at or above max, so the data always fits the axis.
  for (let v = 0; ; v += step) {
    ticks.push(Number(v.toPrecision(12)))
    if (v >= max - step * 1e-9) break
  }
  return ticks
}

export function compactNumber(v: number): string {
  const abs = Math.abs(v)
  if (abs >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`
  if (abs >= 1e3) return `${Number((v / 1e3).toPrecision(3))}k`
  return String(Number(v.toPrecision(3)))
}

export function lineChart(options: LineChartOptions): string {
  const width = options.width ?? 560
  const height = options.height ?? 280
  const plotW = width - MARGIN.left - MARGIN.right
  const plotH = height - MARGIN.top - MARGIN.bottom
  const all = options.series.flatMap((s) => s.points)
  const xMaxData = Math.max(0, ...all.map(([x]) => x))
  const yMaxData = Math.max(0, ...all.map(([, y]) => y))
  const xTicks = niceTicks(options.xMax ?? (xMaxData || 1))
  const yTicks = niceTicks(options.yMax ?? (yMaxData || 1), 4)
  const xMax = xTicks[xTicks.length - 1] || 1
  const yMax = yTicks[yTicks.length - 1] || 1
  const sx = (x: number) => MARGIN.left + (Math.min(x, xMax) / xMax) * plotW
  const sy = (y: number) => MARGIN.top + plotH - (Math.min(y, yMax) / yMax) * plotH
  const parts = frame(options, width, height, yTicks, sy)
  const xFormat = options.xFormat ?? compactNumber
  for (const t of xTicks) {
    parts.push(
      `<text x="${sx(t).toFixed(1)}" y="${MARGIN.top + plotH + 16}" class="tick" text-anchor="middle">${escapeXml(xFormat(t))}</text>`,
    )
  }
  options.series.forEach((s, i) => {
    const colour = s.colour ?? (PALETTE[i % PALETTE.length] as string)
    let d = ''
    let previousY: number | undefined
    for (const [x, y] of s.points) {
      const px = sx(x).toFixed(1)
      const py = sy(y).toFixed(1)
      if (d === '') d = `M${px},${py}`
      else d += s.step && previousY !== undefined ? `H${px}V${py}` : `L${px},${py}`
      previousY = y
    }
    if (d !== '') {
      parts.push(
        `<path class="series" data-series="${escapeXml(s.name)}" d="${d}" stroke="${colour}" fill="none" stroke-width="1.8"/>`,
      )
    }
    parts.push(legendEntry(i, s.name, colour, MARGIN.left + plotW))
  })
  parts.push('</svg>')
  return parts.join('')
}

/** The svg element, title, y grid and ticks, plot frame and axis labels shared by both kinds of chart. */
function frame(
  options: { title: string; xLabel: string; yLabel: string; yFormat?: (v: number) => string },
  width: number,
  height: number,
  yTicks: readonly number[],
  sy: (y: number) => number,
): string[] {
  const plotW = width - MARGIN.left - MARGIN.right
  const plotH = height - MARGIN.top - MARGIN.bottom
  const yFormat = options.yFormat ?? compactNumber
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeXml(options.title)}" data-y-max="${yTicks[yTicks.length - 1] ?? 0}">`,
    `<text x="${MARGIN.left}" y="16" class="title">${escapeXml(options.title)}</text>`,
  ]
  for (const t of yTicks) {
    parts.push(
      `<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${sy(t).toFixed(1)}" y2="${sy(t).toFixed(1)}" class="grid"/>`,
    )
    parts.push(
      `<text x="${MARGIN.left - 6}" y="${(sy(t) + 4).toFixed(1)}" class="tick" text-anchor="end">${escapeXml(yFormat(t))}</text>`,
    )
  }
  parts.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" class="frame"/>`)
  parts.push(
    `<text x="${MARGIN.left + plotW / 2}" y="${height - 6}" class="label" text-anchor="middle">${escapeXml(options.xLabel)}</text>`,
  )
  parts.push(
    `<text transform="translate(14 ${MARGIN.top + plotH / 2}) rotate(-90)" class="label" text-anchor="middle">${escapeXml(options.yLabel)}</text>`,
  )
  return parts
}

function legendEntry(i: number, name: string, colour: string, plotRight: number): string {
  const ly = MARGIN.top + 6 + i * 16
  return (
    `<line x1="${plotRight + 10}" x2="${plotRight + 26}" y1="${ly}" y2="${ly}" stroke="${colour}" stroke-width="3"/>` +
    `<text x="${plotRight + 30}" y="${ly + 4}" class="legend">${escapeXml(name)}</text>`
  )
}

export interface BarSeries {
  name: string
  /** One value per category; null draws no bar (no data), 0 a bar of no height. */
  values: readonly (number | null)[]
  colour?: string
}

export interface BarChartOptions {
  title: string
  xLabel: string
  yLabel: string
  categories: readonly string[]
  series: readonly BarSeries[]
  width?: number
  height?: number
  yMax?: number
  yFormat?: (v: number) => string
}

/** Grouped bars: one group per category, one bar per series in each. */
export function barChart(options: BarChartOptions): string {
  const width = options.width ?? 560
  const height = options.height ?? 280
  const plotW = width - MARGIN.left - MARGIN.right
  const plotH = height - MARGIN.top - MARGIN.bottom
  const yMaxData = Math.max(0, ...options.series.flatMap((s) => s.values.map((v) => v ?? 0)))
  const yTicks = niceTicks(options.yMax ?? (yMaxData || 1), 4)
  const yMax = yTicks[yTicks.length - 1] || 1
  const sy = (y: number) => MARGIN.top + plotH - (Math.min(Math.max(y, 0), yMax) / yMax) * plotH
  const parts = frame(options, width, height, yTicks, sy)
  const groups = Math.max(1, options.categories.length)
  const groupW = plotW / groups
  const barW = (groupW * 0.8) / Math.max(1, options.series.length)
  // Label every category when they fit, else every k-th.
  const every = Math.max(1, Math.ceil((groups * 44) / plotW))
  options.categories.forEach((label, g) => {
    if (g % every !== 0) return
    parts.push(
      `<text x="${(MARGIN.left + groupW * (g + 0.5)).toFixed(1)}" y="${MARGIN.top + plotH + 16}" class="tick" text-anchor="middle">${escapeXml(label)}</text>`,
    )
  })
  options.series.forEach((s, i) => {
    const colour = s.colour ?? (PALETTE[i % PALETTE.length] as string)
    s.values.forEach((v, g) => {
      if (v === null || !Number.isFinite(v)) return
      const x = MARGIN.left + groupW * g + groupW * 0.1 + barW * i
      const y = sy(v)
      parts.push(
        `<rect class="bar" data-series="${escapeXml(s.name)}" x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${barW.toFixed(1)}" height="${(MARGIN.top + plotH - y).toFixed(1)}" fill="${colour}"><title>${escapeXml(`${s.name}, ${options.categories[g] ?? ''}: ${(options.yFormat ?? compactNumber)(v)}`)}</title></rect>`,
      )
    })
    parts.push(legendEntry(i, s.name, colour, MARGIN.left + plotW))
  })
  parts.push('</svg>')
  return parts.join('')
}
