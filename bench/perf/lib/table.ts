import { loadavg } from 'node:os'

/** The machine's 1-minute load average now: printed with every table, since the machine is shared. */
export function loadNote(): string {
  return `load average ${loadavg()[0]?.toFixed(1) ?? '?'}`
}

/** Prints rows as a Markdown table, so the output can be pasted into docs/benchmarks.md as it is. */
export function printTable(
  title: string,
  columns: readonly string[],
  rows: readonly (readonly (string | number)[])[],
): void {
  const cells = rows.map((row) => row.map((cell) => (typeof cell === 'number' ? formatNumber(cell) : cell)))
  const widths = columns.map((column, i) => Math.max(column.length, ...cells.map((row) => String(row[i] ?? '').length)))
  const line = (row: readonly string[]): string =>
    `| ${row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(' | ')} |`
  console.log(`\n${title}\n`)
  console.log(line(columns))
  console.log(`|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`)
  for (const row of cells) console.log(line(row))
}

export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return 'n/a'
  if (Number.isInteger(value)) return value.toLocaleString('en-US')
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US')
  if (Math.abs(value) >= 100) return value.toFixed(0)
  if (Math.abs(value) >= 10) return value.toFixed(1)
  return value.toFixed(2)
}

/** Command-line flags as `--name value` pairs; the benchmarks take only a few numeric options. */
export function flag(name: string, fallback: number): number
export function flag(name: string, fallback: string): string
export function flag(name: string, fallback: number | string): number | string {
  const at = process.argv.indexOf(`--${name}`)
  const raw = at === -1 ? undefined : process.argv[at + 1]
  if (raw === undefined) return fallback
  return typeof fallback === 'number' ? Number(raw) : raw
}
