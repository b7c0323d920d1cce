/**
 * Line charts as inline SVG strings: the HTML report must open on a machine without network, so no chart
 * library from a CDN, and a bundled one would outweigh these hundred lines. Each series is one
 * `<path class="series">`, which the report's render check and the Chromium test look for.
 */
export interface Series {
  name: string
  points: readonly (readonly [number, number])[]
  /** Draw as steps (a CDF, a counter) rather than straight segments. */
  step?: boolean
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
}

/** A colour-blind-safe palette (Okabe–Ito), in series order. */
export const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#F0E442', '#000000'] as const

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
  const yFormat = options.yFormat ?? compactNumber
  const parts: string[] = []
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeXml(options.title)}">`,
  )
  parts.push(`<text x="${MARGIN.left}" y="16" class="title">${escapeXml(options.title)}</text>`)
  for (const t of yTicks) {
    parts.push(
      `<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${sy(t).toFixed(1)}" y2="${sy(t).toFixed(1)}" class="grid"/>`,
    )
    parts.push(
      `<text x="${MARGIN.left - 6}" y="${(sy(t) + 4).toFixed(1)}" class="tick" text-anchor="end">${escapeXml(yFormat(t))}</text>`,
    )
  }
  for (const t of xTicks) {
    parts.push(
      `<text x="${sx(t).toFixed(1)}" y="${MARGIN.top + plotH + 16}" class="tick" text-anchor="middle">${escapeXml(compactNumber(t))}</text>`,
    )
  }
  parts.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" class="frame"/>`)
  parts.push(
    `<text x="${MARGIN.left + plotW / 2}" y="${height - 6}" class="label" text-anchor="middle">${escapeXml(options.xLabel)}</text>`,
  )
  parts.push(
    `<text transform="translate(14 ${MARGIN.top + plotH / 2}) rotate(-90)" class="label" text-anchor="middle">${escapeXml(options.yLabel)}</text>`,
  )
  options.series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length] as string
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
    const ly = MARGIN.top + 6 + i * 16
    parts.push(
      `<line x1="${MARGIN.left + plotW + 10}" x2="${MARGIN.left + plotW + 26}" y1="${ly}" y2="${ly}" stroke="${colour}" stroke-width="3"/>`,
    )
    parts.push(`<text x="${MARGIN.left + plotW + 30}" y="${ly + 4}" class="legend">${escapeXml(s.name)}</text>`)
  })
  parts.push('</svg>')
  return parts.join('')
}
