import { describe, expect, it } from 'vitest'
import { dashboardPath, readRepoFile } from './support.js'

/**
 * The dashboard reads the way an operator expects: every query follows the variables at the top, stacked
 * series are compared only with a line they add up to, each axis has one unit, "429s" means 429s, and a
 * ratio in [0, 1] is not shown as a percentage.
 */
interface Override {
  matcher: { id: string; options: string }
  properties: { id: string; value: unknown }[]
}
interface Panel {
  id: number
  type: string
  title: string
  repeat?: string
  targets?: { refId: string; expr: string; format?: string; instant?: boolean }[]
  fieldConfig?: {
    defaults: { unit?: string; min?: number; max?: number; custom?: { stacking?: { mode: string } } }
    overrides: Override[]
  }
}
const dashboard = JSON.parse(readRepoFile(dashboardPath)) as {
  templating: { list: { name: string; type: string }[] }
  panels: Panel[]
}
const panels = dashboard.panels.filter((p) => p.type !== 'row')
const panel = (title: string): Panel => {
  const found = panels.find((p) => p.title === title)
  if (found === undefined) throw new Error(`no panel "${title}"`)
  return found
}

/** A field property for one query: its override by refId, else the panel default. */
function property(p: Panel, refId: string, id: string, fallback: unknown): unknown {
  for (const override of p.fieldConfig?.overrides ?? []) {
    if (override.matcher.id !== 'byFrameRefID' || override.matcher.options !== refId) continue
    const found = override.properties.find((prop) => prop.id === id)
    if (found !== undefined) return found.value
  }
  return fallback
}
const unitOf = (p: Panel, refId: string) => property(p, refId, 'unit', p.fieldConfig?.defaults.unit ?? 'short')
const axisOf = (p: Panel, refId: string) => {
  const placement = property(p, refId, 'custom.axisPlacement', 'auto')
  return placement === 'auto' ? 'left' : placement
}
const stackingOf = (p: Panel, refId: string) =>
  (
    property(p, refId, 'custom.stacking', p.fieldConfig?.defaults.custom?.stacking ?? { mode: 'none' }) as {
      mode: string
    }
  ).mode

/** Every metric selector in a query: the metric name and what is inside its braces. */
const selectors = (expr: string) =>
  [...expr.matchAll(/\b(kvgate_[a-z_]+|vllm:[a-z_:]+)(\{[^}]*\})?/g)].map((m) => ({
    metric: m[1] ?? '',
    labels: m[2] ?? '',
  }))

const REJECTED_429 = ['rejected_deadline', 'rejected_queue_full', 'rejected_early', 'rejected_quota']

describe('dashboard conventions', () => {
  it('filters every kvgate query by $job/$instance and every vLLM query by $vllm_job/$vllm_instance', () => {
    const names = dashboard.templating.list.map((v) => v.name)
    expect(names).toEqual(expect.arrayContaining(['job', 'instance', 'vllm_job', 'vllm_instance', 'backend']))
    let vllmQueries = 0
    for (const p of panels) {
      for (const target of p.targets ?? []) {
        for (const { metric, labels } of selectors(target.expr)) {
          const where = `${p.title} ${target.refId}: ${metric}`
          if (metric.startsWith('vllm:')) {
            vllmQueries++
            expect(labels, where).toContain('job=~"$vllm_job"')
            expect(labels, where).toContain('instance=~"$vllm_instance"')
          } else {
            expect(labels, where).toContain('job=~"$job"')
            expect(labels, where).toContain('instance=~"$instance"')
          }
        }
      }
    }
    expect(vllmQueries).toBeGreaterThanOrEqual(2)
  })

  it('stacks KV usage only against the capacity it adds up to, and has a KV panel per backend', () => {
    for (const p of panels.filter((x) => x.targets?.some((t) => t.expr.includes('kvgate_backend_capacity_tokens')))) {
      const capacity = p.targets?.find((t) => t.expr.includes('kvgate_backend_capacity_tokens'))
      expect(stackingOf(p, capacity?.refId ?? ''), p.title).toBe('none')
      const stacked = (p.targets ?? []).filter((t) => stackingOf(p, t.refId) !== 'none')
      expect(stacked.length, p.title).toBeGreaterThan(0)
      // A series per backend stacked under a capacity per backend would add the backends up against one of them.
      for (const t of p.targets ?? []) expect(t.expr, `${p.title} ${t.refId}`).not.toMatch(/by \(backend\)/)
    }
    const perBackend = panel('KV tokens on $backend: used (polled) + ledger reservation')
    expect(perBackend.repeat).toBe('backend')
    for (const t of perBackend.targets ?? []) expect(t.expr).toContain('backend=~"$backend"')
    expect(panel('KV tokens, all backends: used + reservation vs capacity').repeat).toBeUndefined()
  })

  it('gives each axis one unit: health and policy panels put the second unit on the right', () => {
    for (const p of panels.filter((x) => x.type === 'timeseries')) {
      const unitsByAxis = new Map<unknown, Set<unknown>>()
      for (const t of p.targets ?? []) {
        const axis = axisOf(p, t.refId)
        unitsByAxis.set(axis, (unitsByAxis.get(axis) ?? new Set()).add(unitOf(p, t.refId)))
      }
      for (const [axis, units] of unitsByAxis) expect([...units], `${p.title}, ${String(axis)} axis`).toHaveLength(1)
    }
    const health = panel('Backend health')
    expect([unitOf(health, 'A'), axisOf(health, 'A')]).toEqual(['none', 'left'])
    expect([unitOf(health, 'B'), axisOf(health, 'B')]).toEqual(['s', 'right'])
    const policy = panel('Policy state per user')
    expect(policy.targets?.find((t) => t.refId === 'A')?.expr).toContain('kvgate_policy_virtual_tokens')
    expect(policy.targets?.find((t) => t.refId === 'B')?.expr).toContain('kvgate_policy_quota_tokens_per_minute')
    expect(axisOf(policy, 'A')).toBe('left')
    expect([unitOf(policy, 'B'), axisOf(policy, 'B')]).toEqual(['suffix: tok/min', 'right'])
  })

  it('counts only 429 outcomes in the 429 panels (a 503 is rejected_unavailable)', () => {
    const rejectionPanels = panels.filter((p) => p.title.includes('429'))
    expect(rejectionPanels.map((p) => p.title).sort()).toEqual(['429s by reason', '429s by user'])
    for (const p of [...rejectionPanels, panel('Usage per user (dashboard time range)')]) {
      for (const t of p.targets ?? []) {
        const matcher = /outcome=~"([^"]+)"/.exec(t.expr)?.[1]
        if (matcher === undefined) continue
        // PromQL regex matchers are anchored at both ends.
        const outcome = new RegExp(`^(?:${matcher})$`)
        const where = `${p.title} ${t.refId}`
        expect(outcome.test('rejected_unavailable'), where).toBe(false)
        for (const rejected of REJECTED_429) expect(outcome.test(rejected), `${where}: ${rejected}`).toBe(true)
      }
    }
  })

  it("shows Jain's index as a ratio from 0 to 1, not a percentage", () => {
    const jain = panel('Fairness (Jain index over users)')
    expect(jain.fieldConfig?.defaults.unit).not.toMatch(/percent/)
    expect([jain.fieldConfig?.defaults.min, jain.fieldConfig?.defaults.max]).toEqual([0, 1])
  })

  it('has a per-user usage table over the time range: requests, 429s, 503s and tokens', () => {
    const table = panel('Usage per user (dashboard time range)')
    expect(table.type).toBe('table')
    const exprs = (table.targets ?? []).map((t) => t.expr)
    for (const t of table.targets ?? []) {
      expect(t).toMatchObject({ format: 'table', instant: true })
      expect(t.expr).toMatch(/^sum by \(user\) \(increase\(.*\[\$__range\]\)\)$/)
    }
    expect(exprs.filter((e) => e.includes('kvgate_requests_total'))).toHaveLength(3)
    expect(exprs.some((e) => e.includes('outcome="rejected_unavailable"'))).toBe(true)
    expect(exprs.filter((e) => e.includes('kvgate_tokens_served_total'))).toEqual([
      expect.stringContaining('kind="prompt"'),
      expect.stringContaining('kind="completion"'),
    ])
  })
})
