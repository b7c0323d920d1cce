import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { readRepoFile, repoPath, requireTool, runTool, toolGate } from './support.js'

/**
 * deploy/prometheus: the alerting rules and the scrape config, checked by the real promtool (Debian package
 * `prometheus`), and the Kubernetes PrometheusRule kept identical to the plain rules file.
 */
const promtool = toolGate('promtool', 'prometheus')
const rulesFile = 'deploy/prometheus/kvgate-alerts.yml'

describe.skipIf(!promtool.run)('alerting rules and scrape config (promtool)', () => {
  it('promtool check rules accepts every alert', async () => {
    const result = await runTool(requireTool(promtool, 'promtool'), ['check', 'rules', rulesFile])
    expect(result.code, result.stdout + result.stderr).toBe(0)
    const alerts = (parse(readRepoFile(rulesFile)) as { groups: { rules: { alert: string }[] }[] }).groups.flatMap(
      (group) => group.rules.map((rule) => rule.alert),
    )
    expect(result.stdout).toContain(`SUCCESS: ${alerts.length} rules found`)
    // The five conditions issue 6 asks for, by name.
    expect(alerts).toEqual(
      expect.arrayContaining([
        'KvgateQueueWaitNearDeadline',
        'KvgateUserThrottled',
        'KvgateLedgerNotDraining',
        'KvgateBackendMetricsStale',
        'KvgatePredictorCoverageLow',
      ]),
    )
  })

  it('the alerts fire on the synthetic series of kvgate-alerts.test.yml (promtool test rules)', async () => {
    const result = await runTool(requireTool(promtool, 'promtool'), ['test', 'rules', 'kvgate-alerts.test.yml'], {
      cwd: repoPath('deploy/prometheus/'),
    })
    expect(result.code, result.stdout + result.stderr).toBe(0)
    expect(result.stdout).toContain('SUCCESS')
  })

  it('promtool check config accepts prometheus.yml and finds the rule file', async () => {
    const result = await runTool(requireTool(promtool, 'promtool'), [
      'check',
      'config',
      'deploy/prometheus/prometheus.yml',
    ])
    expect(result.code, result.stdout + result.stderr).toBe(0)
    expect(result.stdout).toContain('1 rule files found')
  })

  let scratch = ''
  beforeAll(() => {
    scratch = mkdtempSync(join(tmpdir(), 'kvgate-rules-'))
  })
  afterAll(() => rmSync(scratch, { recursive: true, force: true }))

  it('a broken rule is refused (the check can fail)', async () => {
    const broken = join(scratch, 'broken.yml')
    writeFileSync(
      broken,
      'groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum by (le (rate(x[5m]))\n',
    )
    const result = await runTool(requireTool(promtool, 'promtool'), ['check', 'rules', broken])
    expect(result.code).not.toBe(0)
  })
})

describe('PrometheusRule for the Prometheus Operator', () => {
  it('carries exactly the groups of deploy/prometheus/kvgate-alerts.yml', () => {
    const plain = parse(readRepoFile(rulesFile)) as { groups: unknown[] }
    const operator = parse(readRepoFile('deploy/kubernetes/prometheusrule.yaml')) as {
      apiVersion: string
      kind: string
      spec: { groups: unknown[] }
    }
    expect(operator.apiVersion).toBe('monitoring.coreos.com/v1')
    expect(operator.kind).toBe('PrometheusRule')
    expect(operator.spec.groups).toEqual(plain.groups)
  })
})
