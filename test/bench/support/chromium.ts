import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'

/** Debian's Chromium, which CI installs; undefined on a developer machine without it. */
export const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p))

/**
 * Open a file in headless Chromium, let its scripts run (virtual time, so no wall-clock wait), and return the
 * DOM as it stands after them.
 */
export function dumpDom(file: string, profileDir: string): string {
  if (CHROMIUM === undefined) throw new Error('no chromium')
  return execFileSync(
    CHROMIUM,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--no-first-run',
      `--user-data-dir=${join(profileDir, 'profile')}`,
      '--virtual-time-budget=5000',
      '--dump-dom',
      `file://${file}`,
    ],
    { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'ignore'] },
  )
}

/** The render check's counts from a dumped DOM: chart marks (line series and bars) and how many were drawn. */
export function renderCheck(dom: string): { series: number; drawn: number } | undefined {
  const match = /<div id="render-check" hidden="?"?[^>]*data-series="(\d+)" data-drawn="(\d+)"/.exec(dom)
  return match === null ? undefined : { series: Number(match[1]), drawn: Number(match[2]) }
}
