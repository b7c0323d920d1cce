import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse, stringify } from 'yaml'
import { parseConfig } from '../../src/config/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import {
  dashboardTargets,
  freePort,
  loadDashboard,
  pollUntil,
  readRepoFile,
  repoPath,
  requireTool,
  substituteVariables,
  toolGate,
} from './support.js'

/**
 * kvgate's live /metrics with real tools: a gateway in front of the emulator serves a few requests, then
 * `promtool check metrics` lints the scrape, and a real Prometheus server (the Debian `prometheus` package),
 * configured from deploy/prometheus/prometheus.yml, scrapes it and answers the dashboard's admissions query.
 */
const promtool = toolGate('promtool', 'prometheus')
const prometheusBin = toolGate('prometheus', 'prometheus')
const dashboard = loadDashboard()

const USERS = ['alice', 'bob'] as const

interface PromQueryResult {
  status: string
  data: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] }
}

async function httpText(url: string): Promise<{ status: number; text: string }> {
  const response = await request(url)
  return { status: response.statusCode, text: await response.body.text() }
}

async function httpJson<T>(url: string): Promise<T> {
  const { status, text } = await httpText(url)
  if (status !== 200) throw new Error(`${url}: HTTP ${status}: ${text.slice(0, 200)}`)
  return JSON.parse(text) as T
}

describe.skipIf(!promtool.run || !prometheusBin.run)('kvgate /metrics with promtool and a real Prometheus', () => {
  let sim: SimHandle
  let gateway: Gateway
  let gatewayUrl = ''
  /** kvgate's admin listener, where its /metrics lives. */
  let adminUrl = ''
  let scratch = ''

  /** A short chat completion through kvgate; ignore_eos makes the emulator produce exactly max_tokens. */
  async function complete(user: string, stream: boolean): Promise<number> {
    const response = await request(`${gatewayUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-user-id': user },
      body: JSON.stringify({
        model: 'kvgate-sim',
        messages: [{ role: 'user', content: 'Say something short.' }],
        max_tokens: 8,
        ignore_eos: true,
        stream,
      }),
    })
    await response.body.text()
    return response.statusCode
  }

  async function sendTraffic(): Promise<void> {
    const statuses = await Promise.all(USERS.flatMap((user) => [complete(user, false), complete(user, true)]))
    expect(statuses).toEqual(statuses.map(() => 200))
  }

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'kvgate-live-metrics-'))
    sim = await startSim({ port: 0, host: '127.0.0.1', speed: 20, numGpuBlocks: 512, seed: 6, logger: false })
    const config = parseConfig({
      server: { host: '127.0.0.1', port: 0 },
      backends: [{ url: sim.url, name: 'sim-0' }],
      users: USERS.map((name) => ({ name })),
      policy: { name: 'vtc', options: {} }, // so the dashboard's policy panel has data too
      telemetry: { logLevel: 'silent' },
    })
    gateway = await createGateway({ config, logger: false })
    gatewayUrl = await gateway.listen({ port: 0, host: '127.0.0.1' })
    adminUrl = gateway.adminUrl()
    await pollUntil('kvgate /health to be 200', async () =>
      (await httpText(`${gatewayUrl}/health`)).status === 200 ? true : undefined,
    )
    await sendTraffic()
  })

  afterAll(async () => {
    await gateway?.close()
    await sim?.close()
    if (scratch !== '') rmSync(scratch, { recursive: true, force: true })
  })

  it('promtool check metrics finds no problem in a live scrape', async () => {
    const { status, text } = await httpText(`${adminUrl}/metrics`)
    expect(status).toBe(200)
    expect(text).toMatch(/^kvgate_admissions_total\{user="alice"\} [1-9]/m)
    // prom-client's process and Node.js defaults, and the build, in the gateway's own registry.
    for (const series of [
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(text).toMatch(new RegExp(`^${series} `, 'm'))
    }
    const version = (
      JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
    ).version
    expect(text).toContain(`kvgate_build_info{version="${version}",node_version="${process.version}"} 1`)
    const lint = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
      const child = spawn(requireTool(promtool, 'promtool'), ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] })
      let output = ''
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
      child.on('error', reject)
      child.on('close', (code) => resolve({ code, output }))
      child.stdin.end(text)
    })
    expect(lint.output).toBe('')
    expect(lint.code).toBe(0)
  })

  it('serves every kvgate_* metric the dashboard and the alert rules query', async () => {
    const { text } = await httpText(`${adminUrl}/metrics`)
    const families = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]))
    const queried = [
      ...dashboardTargets(dashboard).map((t) => t.expr),
      ...(
        parse(readRepoFile('deploy/prometheus/kvgate-alerts.yml')) as { groups: { rules: { expr: string }[] }[] }
      ).groups.flatMap((g) => g.rules.map((r) => r.expr)),
    ]
    const names = new Set(queried.flatMap((expr) => [...expr.matchAll(/\bkvgate_[a-z_]+/g)].map((m) => m[0])))
    expect(names.size).toBeGreaterThan(10)
    for (const name of names) {
      const family = name.replace(/_(bucket|sum|count)$/, '')
      expect(families.has(family) || families.has(name), `${name} is queried but not served`).toBe(true)
    }
  })

  describe('a real Prometheus server', () => {
    let prometheus: ChildProcess | undefined
    let prometheusUrl = ''
    let prometheusLog = ''

    beforeAll(async () => {
      // deploy/prometheus/prometheus.yml with the compose targets swapped for this gateway and emulator, and
      // a 1 s scrape so the test needs seconds, not minutes.
      const shipped = parse(readRepoFile('deploy/prometheus/prometheus.yml')) as {
        global: Record<string, unknown>
        rule_files: string[]
        scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[]
      }
      const hostPort = (url: string): string => new URL(url).host
      const targets: Record<string, string> = { kvgate: hostPort(adminUrl), vllm: hostPort(sim.url) }
      const config = {
        ...shipped,
        global: { ...shipped.global, scrape_interval: '1s', evaluation_interval: '1s' },
        rule_files: shipped.rule_files.map((file) => repoPath(`deploy/prometheus/${file}`)),
        scrape_configs: shipped.scrape_configs.map((job) => {
          const target = targets[job.job_name]
          if (target === undefined) throw new Error(`prometheus.yml has a job this test does not know: ${job.job_name}`)
          return { ...job, static_configs: [{ targets: [target] }] }
        }),
      }
      const configFile = join(scratch, 'prometheus.yml')
      writeFileSync(configFile, stringify(config))

      // Prometheus cannot listen on port 0 and report the port, so take a free one; retry if it was taken.
      for (let attempt = 0; attempt < 3 && prometheusUrl === ''; attempt += 1) {
        const port = await freePort()
        const child = spawn(
          requireTool(prometheusBin, 'prometheus'),
          [
            `--config.file=${configFile}`,
            `--storage.tsdb.path=${join(scratch, `data-${attempt}`)}`,
            `--web.listen-address=127.0.0.1:${port}`,
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        )
        child.stdout?.on('data', (chunk: Buffer) => (prometheusLog += chunk.toString()))
        child.stderr?.on('data', (chunk: Buffer) => (prometheusLog += chunk.toString()))
        const exited = new Promise<'exited'>((resolve) => child.once('exit', () => resolve('exited')))
        const ready = pollUntil('Prometheus /-/ready', async () =>
          (await httpText(`http://127.0.0.1:${port}/-/ready`)).status === 200 ? ('ready' as const) : undefined,
        )
        const first = await Promise.race([ready, exited])
        if (first === 'ready') {
          prometheus = child
          prometheusUrl = `http://127.0.0.1:${port}`
        } else {
          ready.catch(() => undefined) // the loser of the race: its timeout no longer matters
        }
      }
      if (prometheusUrl === '') throw new Error(`Prometheus did not start:\n${prometheusLog}`)
    }, 30_000)

    afterAll(async () => {
      if (prometheus !== undefined && prometheus.exitCode === null) {
        const exited = new Promise((resolve) => prometheus?.once('exit', resolve))
        prometheus.kill('SIGTERM')
        await exited
      }
    })

    it('scrapes kvgate and the emulator, and loads the alert rules', async () => {
      interface Targets {
        data: { activeTargets: { labels: { job: string }; health: string; lastError: string }[] }
      }
      // Prometheus applies new scrape targets in 5 s batches, so the first scrape takes a few seconds.
      const health = await pollUntil(
        'both scrape targets up',
        async () => {
          const { data } = await httpJson<Targets>(`${prometheusUrl}/api/v1/targets`)
          const up = Object.fromEntries(data.activeTargets.map((t) => [t.labels.job, t.health]))
          return up['kvgate'] === 'up' && up['vllm'] === 'up' ? up : undefined
        },
        { timeoutMs: 40_000, intervalMs: 250 },
      )
      expect(health).toEqual({ kvgate: 'up', vllm: 'up' })
      interface Rules {
        data: { groups: { name: string; rules: { name: string; health: string }[] }[] }
      }
      const { data } = await httpJson<Rules>(`${prometheusUrl}/api/v1/rules`)
      const rules = data.groups.flatMap((g) => g.rules)
      expect(rules.length).toBeGreaterThanOrEqual(5)
      expect(rules.filter((r) => r.health === 'err')).toEqual([])
    })

    it("answers the dashboard's admissions panel query with data", async () => {
      const panel = dashboardTargets(dashboard).find((t) => t.panel === 'Admissions by user')
      expect(panel).toBeDefined()
      const query = substituteVariables(panel?.expr ?? '', dashboard, '1m')
      // New admissions while Prometheus is scraping, so the rate over the last minute is above zero.
      await pollUntil('kvgate scraped once by Prometheus', async () => {
        const { data } = await httpJson<PromQueryResult>(
          `${prometheusUrl}/api/v1/query?query=${encodeURIComponent('up{job="kvgate"}')}`,
        )
        return data.result.length > 0 ? true : undefined
      })
      await sendTraffic()
      const result = await pollUntil(
        `a non-zero answer to ${query}`,
        async () => {
          const answer = await httpJson<PromQueryResult>(
            `${prometheusUrl}/api/v1/query?query=${encodeURIComponent(query)}`,
          )
          expect(answer.status).toBe('success')
          const positive = answer.data.result.filter((series) => Number(series.value[1]) > 0)
          return positive.length > 0 ? answer.data.result : undefined
        },
        { timeoutMs: 20_000, intervalMs: 500 },
      )
      expect(result.map((series) => series.metric['user']).sort()).toEqual([...USERS].sort())
    })

    it('runs every dashboard query without error, with data for the panels a short run feeds', async () => {
      const empty: string[] = []
      for (const target of dashboardTargets(dashboard)) {
        // The jobs of deploy/prometheus/prometheus.yml: kvgate's panels must find kvgate, vLLM's must find vLLM.
        const query = substituteVariables(target.expr, dashboard, '1m', { job: 'kvgate', vllm_job: 'vllm' })
        const answer = await httpJson<PromQueryResult>(
          `${prometheusUrl}/api/v1/query?query=${encodeURIComponent(query)}`,
        )
        expect(answer.status, `${target.panel} ${target.refId}: ${query}`).toBe('success')
        if (answer.data.result.length === 0) empty.push(`${target.panel} ${target.refId}`)
      }
      // These panels have data as soon as requests went through; the others need rejections, a quota policy
      // or a vLLM histogram rate over two scrapes, which this short run does not guarantee.
      for (const panel of [
        'Admissions by user A',
        'Request outcomes A',
        'Queue depth A',
        'KV tokens, all backends: used + reservation vs capacity A',
        'KV tokens, all backends: used + reservation vs capacity B',
        'KV tokens, all backends: used + reservation vs capacity C',
        'KV tokens on $backend: used (polled) + ledger reservation A',
        'KV tokens on $backend: used (polled) + ledger reservation B',
        'KV tokens on $backend: used (polled) + ledger reservation C',
        'KV usage ratio A',
        'KV usage ratio B',
        'Backend health A',
        'TTFT through kvgate A',
        'Tokens served per user A',
        'Fairness (Jain index over users) A',
        'Policy state per user A',
        'Usage per user (dashboard time range) A',
        'Usage per user (dashboard time range) D',
        'Usage per user (dashboard time range) E',
      ]) {
        expect(empty, `${panel} has no data`).not.toContain(panel)
      }
    })
  })
})
