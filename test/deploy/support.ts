import { execFile, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { until } from '../support/poll.js'

/** Shared helpers for the checks of deploy/ with real tools (promtool, prometheus, kubectl). */

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url))
export const repoPath = (relative: string): string =>
  fileURLToPath(new URL(relative, new URL('../../', import.meta.url)))
export const readRepoFile = (relative: string): string => readFileSync(repoPath(relative), 'utf8')

/** The absolute path of an executable on PATH, or undefined. */
export function findExecutable(name: string): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v "$1"`, 'sh', name], { encoding: 'utf8' })
  const path = found.stdout.trim()
  return found.status === 0 && path.length > 0 ? path : undefined
}

export const inCi = Boolean(process.env['CI'])

/**
 * Whether the checks that need a Debian tool run. They run whenever the tool is installed, and always in CI,
 * where `.ci/run` installs it (so a missing tool fails there instead of silently skipping). On a developer
 * machine without it they are skipped with a message saying how to get it.
 */
export function toolGate(name: string, debianPackage: string): { path: string | undefined; run: boolean } {
  const path = findExecutable(name)
  if (path === undefined && !inCi) {
    console.warn(
      `[test/deploy] skipping the ${name} checks: ${name} is not on PATH (apt-get install ${debianPackage}; CI installs it)`,
    )
  }
  return { path, run: path !== undefined || inCi }
}

/** The tool's path, or a failure that says how CI should have provided it. */
export function requireTool(gate: { path: string | undefined }, name: string): string {
  if (gate.path === undefined) throw new Error(`${name} is not on PATH although CI is set: .ci/run must install it`)
  return gate.path
}

export interface ToolResult {
  code: number
  stdout: string
  stderr: string
}

const execFileAsync = promisify(execFile)

/** Run a tool to completion; never throws on a non-zero exit (tests assert on `code` and show the output). */
export async function runTool(
  path: string,
  args: readonly string[],
  options: { cwd?: string; timeoutMs?: number; input?: string } = {},
): Promise<ToolResult> {
  try {
    const { stdout, stderr } = await execFileAsync(path, [...args], {
      cwd: options.cwd ?? repoRoot,
      timeout: options.timeoutMs ?? 30_000,
      encoding: 'utf8',
    })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const failed = err as { code?: number | string; stdout?: string; stderr?: string; message: string }
    return {
      code: typeof failed.code === 'number' ? failed.code : 1,
      stdout: failed.stdout ?? '',
      stderr: failed.stderr ?? failed.message,
    }
  }
}

export { freePort } from '../support/net.js'

/** Poll `probe` until it returns a value, retrying through errors (a process still starting), or fail naming `what`. */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  { timeoutMs = 20_000, intervalMs = 200 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  return await until(probe, { what, timeoutMs, intervalMs, tolerateErrors: true })
}

// ---- the Grafana dashboard -------------------------------------------------------------------------------

export interface DashboardTarget {
  panel: string
  refId: string
  expr: string
}

interface DashboardPanel {
  title?: string
  type?: string
  targets?: { refId?: string; expr?: string }[]
  panels?: DashboardPanel[]
}

export interface Dashboard {
  templating: { list: { name: string; type: string; query?: unknown; allValue?: string; includeAll?: boolean }[] }
  panels: DashboardPanel[]
}

export const dashboardPath = 'deploy/grafana/dashboards/kvgate.json'

export function loadDashboard(): Dashboard {
  return JSON.parse(readRepoFile(dashboardPath)) as Dashboard
}

/** Every panel target's PromQL, rows' nested panels included. */
export function dashboardTargets(dashboard: Dashboard): DashboardTarget[] {
  const out: DashboardTarget[] = []
  const visit = (panels: readonly DashboardPanel[]): void => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) {
        if (typeof target.expr === 'string') {
          out.push({ panel: panel.title ?? '(untitled)', refId: target.refId ?? '?', expr: target.expr })
        }
      }
      visit(panel.panels ?? [])
    }
  }
  visit(dashboard.panels)
  return out
}

/**
 * Grafana's substitutions, done the way Grafana does them for "All": `$__rate_interval` becomes a range
 * (`rateInterval`), and each multi-value variable with includeAll becomes its allValue (`.*`). Anything
 * left starting with `$` is a variable the dashboard does not define, which the caller should catch.
 */
export function substituteVariables(
  expr: string,
  dashboard: Dashboard,
  rateInterval = '1m',
  values: Readonly<Record<string, string>> = {},
): string {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's own variable syntax, not a template
  let out = expr.replaceAll('${__rate_interval}', rateInterval).replaceAll('$__rate_interval', rateInterval)
  out = out.replaceAll('$__interval', rateInterval).replaceAll('$__range', rateInterval)
  for (const variable of dashboard.templating.list) {
    if (variable.type !== 'query') continue
    // A chosen value (a test picking one job) or, as with "All", the variable's allValue.
    const value = values[variable.name] ?? variable.allValue ?? '.*'
    out = out.replaceAll(`\${${variable.name}}`, value).replace(new RegExp(`\\$${variable.name}\\b`, 'g'), value)
  }
  return out
}

/** A Prometheus rules file with one recording rule per expression, so `promtool check rules` parses each. */
export function recordingRulesFor(exprs: readonly { name: string; expr: string }[]): string {
  const lines = ['groups:', '  - name: kvgate-dashboard-expressions', '    rules:']
  for (const { name, expr } of exprs) {
    lines.push(`      - record: ${name}`, `        expr: ${JSON.stringify(expr)}`)
  }
  return `${lines.join('\n')}\n`
}
