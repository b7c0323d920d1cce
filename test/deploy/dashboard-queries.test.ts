import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  dashboardTargets,
  loadDashboard,
  readRepoFile,
  recordingRulesFor,
  requireTool,
  runTool,
  substituteVariables,
  toolGate,
} from './support.js'

/**
 * The Grafana dashboard: its datasource is a variable, every panel query uses only variables the dashboard
 * defines, and every PromQL expression parses (promtool check rules over one recording rule per expression).
 */
const promtool = toolGate('promtool', 'prometheus')
const dashboard = loadDashboard()
const targets = dashboardTargets(dashboard)

describe('Grafana dashboard', () => {
  it('has the panels issue 6 asks for, each with at least one query', () => {
    const titles = dashboard.panels.filter((p) => p.type !== 'row').map((p) => p.title)
    expect(titles).toEqual(
      expect.arrayContaining([
        'Admissions by user',
        '429s by reason',
        '429s by user',
        'Queue depth',
        'Queue wait (admitted)',
        'KV tokens, all backends: used + reservation vs capacity',
        'KV tokens on $backend: used (polled) + ledger reservation',
        'Usage per user (dashboard time range)',
        'TTFT through kvgate',
        'Tokens served per user',
        'Fairness (Jain index over users)',
        'Predicted quantile vs actual completion length',
      ]),
    )
    for (const panel of dashboard.panels.filter((p) => p.type !== 'row')) {
      expect(panel.targets?.length ?? 0, panel.title).toBeGreaterThan(0)
    }
  })

  it('takes its datasource from the DS_PROMETHEUS variable, never a fixed uid', () => {
    const variable = dashboard.templating.list.find((v) => v.name === 'DS_PROMETHEUS')
    expect(variable).toMatchObject({ type: 'datasource', query: 'prometheus' })
    const text = readRepoFile('deploy/grafana/dashboards/kvgate.json')
    const uids = [...text.matchAll(/"uid":\s*"([^"]*)"/g)].map((m) => m[1])
    // The dashboard's own uid and Grafana's built-in annotation source are the only other uids.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's own variable syntax, not a template
    expect(new Set(uids.filter((uid) => uid !== '${DS_PROMETHEUS}'))).toEqual(new Set(['kvgate', '-- Grafana --']))
  })

  it('uses no variable it does not define', () => {
    for (const target of targets) {
      const substituted = substituteVariables(target.expr, dashboard)
      expect(substituted, `${target.panel} ${target.refId}`).not.toMatch(/\$/)
    }
  })
})

describe.skipIf(!promtool.run)('Grafana dashboard queries (promtool)', () => {
  let scratch = ''
  beforeAll(() => {
    scratch = mkdtempSync(join(tmpdir(), 'kvgate-dashboard-'))
  })
  afterAll(() => rmSync(scratch, { recursive: true, force: true }))

  it('promtool check rules parses every panel expression', async () => {
    expect(targets.length).toBeGreaterThan(20)
    const file = join(scratch, 'dashboard-expressions.yml')
    writeFileSync(
      file,
      recordingRulesFor(
        targets.map((target, i) => ({
          name: `kvgate:dashboard_expression_${i}:check`,
          expr: substituteVariables(target.expr, dashboard),
        })),
      ),
    )
    const result = await runTool(requireTool(promtool, 'promtool'), ['check', 'rules', file])
    expect(result.code, result.stdout + result.stderr).toBe(0)
    expect(result.stdout).toContain(`SUCCESS: ${targets.length} rules found`)
  })
})
