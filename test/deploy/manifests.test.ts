import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, posix } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse, parseAllDocuments } from 'yaml'
import { parseConfig } from '../../src/config/index.js'
import { findExecutable, readRepoFile, repoPath, repoRoot, runTool } from './support.js'

/**
 * deploy/kubernetes, deploy/compose and deploy/grafana provisioning: everything parses as YAML, the example
 * configs pass kvgate's own parseConfig, and the pieces refer to each other consistently (ports, labels,
 * generated names, mounted paths). With kubectl on PATH, `kubectl kustomize` also builds the overlay.
 */
// Manifests are untyped YAML; the assertions below are the schema.
// biome-ignore lint/suspicious/noExplicitAny: walking untyped YAML; every access is checked by an assertion
type Doc = Record<string, any>

const k8s = (file: string): Doc => parse(readRepoFile(`deploy/kubernetes/${file}`)) as Doc

function yamlFilesUnder(relative: string): string[] {
  return readdirSync(repoPath(relative)).flatMap((name) => {
    const path = posix.join(relative, name)
    if (statSync(repoPath(path)).isDirectory()) return yamlFilesUnder(path)
    return /\.ya?ml$/.test(name) ? [path] : []
  })
}

describe('deploy/ YAML', () => {
  const files = yamlFilesUnder('deploy')
  it.each(files)('%s parses as YAML without errors or warnings', (file) => {
    const docs = parseAllDocuments(readRepoFile(file))
    const list = Array.isArray(docs) ? docs : [docs]
    expect(list.length).toBeGreaterThan(0)
    for (const doc of list) {
      expect(doc.errors.map((e) => e.message)).toEqual([])
      expect(doc.warnings.map((e) => e.message)).toEqual([])
    }
  })
})

describe('Kubernetes manifests', () => {
  const kustomization = k8s('kustomization.yaml')
  const deployment = k8s('deployment.yaml')
  const service = k8s('service.yaml')
  const adminService = k8s('service-admin.yaml')
  const serviceMonitor = k8s('servicemonitor.yaml')
  const pod = deployment['spec']['template']['spec']
  const container = pod['containers'][0]
  const configMapName: string = kustomization['configMapGenerator'][0]['name']
  const secretName: string = kustomization['secretGenerator'][0]['name']
  const fileOf = (entry: string): string => entry.split('=').at(-1) ?? entry

  it('the kustomization lists files that exist', () => {
    const listed = [
      ...kustomization['resources'],
      ...kustomization['configMapGenerator'].flatMap((g: Doc) => g['files'].map(fileOf)),
      ...kustomization['secretGenerator'].flatMap((g: Doc) => g['files'].map(fileOf)),
    ] as string[]
    for (const file of listed) expect(existsSync(repoPath(`deploy/kubernetes/${file}`)), file).toBe(true)
    expect(kustomization['resources']).toEqual(
      expect.arrayContaining(['deployment.yaml', 'service.yaml', 'service-admin.yaml', 'servicemonitor.yaml']),
    )
    // The NetworkPolicy is an example to fit to the cluster, not applied as shipped.
    expect(kustomization['resources']).not.toContain('networkpolicy.example.yaml')
  })

  it("the ConfigMap's example config passes parseConfig and points at the vLLM Service", () => {
    const config = parseConfig(k8s('kvgate.yaml'))
    expect(config.backends.map((b) => b.url)).toEqual(['http://vllm:8000'])
    expect(config.identity.apiKeys).toEqual([]) // keys come from the Secret, never the ConfigMap
    const port = container['ports'].find((p: Doc) => p['name'] === 'http')
    expect(port['containerPort']).toBe(config.server.port)
    expect(config.server.host).toBe('0.0.0.0')
    // The admin listener on the pod IP, on the container port named `admin`.
    const admin = container['ports'].find((p: Doc) => p['name'] === 'admin')
    expect(admin['containerPort']).toBe(config.admin.port)
    expect(config.admin.host).toBe('0.0.0.0')
    expect(deployment['spec']['template']['metadata']['annotations']['prometheus.io/port']).toBe(
      String(config.admin.port),
    )
    // Streams must be able to finish before Kubernetes kills the pod.
    expect(pod['terminationGracePeriodSeconds'] * 1000).toBeGreaterThan(config.server.shutdownGraceMs)
  })

  it('probes readiness on /health and mounts the generated ConfigMap and Secret', () => {
    expect(container['readinessProbe']['httpGet']).toEqual({ path: '/health', port: 'http' })
    expect(container['livenessProbe']['httpGet']).toEqual({ path: '/livez', port: 'http' })
    expect(container['resources']['requests']).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) })
    expect(container['resources']['limits']['memory']).toBeDefined()
    const volumes = new Map<string, Doc>(pod['volumes'].map((v: Doc) => [v['name'], v]))
    expect([...volumes.values()].some((v) => v['configMap']?.['name'] === configMapName)).toBe(true)
    expect([...volumes.values()].some((v) => v['secret']?.['secretName'] === secretName)).toBe(true)
    // The kvgate container reads the rendered file at the image's documented config path.
    const mount = container['volumeMounts'].find((m: Doc) => m['mountPath'] === '/etc/kvgate')
    expect(volumes.get(mount['name'])?.['emptyDir']).toBeDefined()
    expect(pod['securityContext']['runAsNonRoot']).toBe(true)
    expect(container['image']).toBe(kustomization['images'][0]['name'])
  })

  it('the Services select the pods; the public one has only the API, the ServiceMonitor scrapes the admin one', () => {
    const podLabels = deployment['spec']['template']['metadata']['labels']
    for (const svc of [service, adminService]) {
      expect(podLabels).toMatchObject(svc['spec']['selector'])
      expect(deployment['spec']['selector']['matchLabels']).toEqual(svc['spec']['selector'])
    }
    // The public Service carries the OpenAI port only: /metrics and /debug are not reachable through it.
    expect(service['spec']['ports'].map((p: Doc) => p['targetPort'])).toEqual(['http'])
    expect(adminService['spec']['ports'].map((p: Doc) => p['targetPort'])).toEqual(['admin'])
    // The ServiceMonitor selects the admin Service and not the public one.
    const selector = serviceMonitor['spec']['selector']['matchLabels']
    expect(adminService['metadata']['labels']).toMatchObject(selector)
    expect(service['metadata']['labels']).not.toMatchObject(selector)
    const endpoint = serviceMonitor['spec']['endpoints'][0]
    expect(adminService['spec']['ports'].map((p: Doc) => p['name'])).toContain(endpoint['port'])
    expect(endpoint['path']).toBe('/metrics')
  })

  it('runs two replicas that share their state through the Redis of redis.yaml, under a disruption budget', () => {
    const config = parseConfig(k8s('kvgate.yaml'))
    const replicas: number = deployment['spec']['replicas']
    expect(replicas).toBeGreaterThanOrEqual(2)
    expect(config.state.store).toBe('redis')
    // Degraded mode's 1/N must count every replica before Redis has said how many are live.
    expect(config.state.expectedReplicas).toBe(replicas)
    const [statefulSet, redisService] = parseAllDocuments(readRepoFile('deploy/kubernetes/redis.yaml')).map(
      (d) => d.toJS() as Doc,
    ) as [Doc, Doc]
    expect(statefulSet['kind']).toBe('StatefulSet')
    expect(redisService['kind']).toBe('Service')
    const url = new URL(config.state.url ?? '')
    expect(url.hostname).toBe(redisService['metadata']['name'])
    expect(Number(url.port)).toBe(redisService['spec']['ports'][0]['port'])
    expect(statefulSet['spec']['template']['metadata']['labels']).toMatchObject(redisService['spec']['selector'])
    // Nothing to persist: every replica re-asserts its reservations after a restart of the store.
    expect(statefulSet['spec']['template']['spec']['containers'][0]['args']).toEqual(
      expect.arrayContaining(['--save', '', '--appendonly', 'no']),
    )
    const pdb = k8s('pdb.yaml')
    expect(pdb['kind']).toBe('PodDisruptionBudget')
    expect(deployment['spec']['template']['metadata']['labels']).toMatchObject(pdb['spec']['selector']['matchLabels'])
    expect(pdb['spec']['minAvailable']).toBeLessThan(replicas)
    expect(kustomization['resources']).toEqual(expect.arrayContaining(['pdb.yaml', 'redis.yaml']))
  })

  describe("the init container that adds the Secret's API keys to the config", () => {
    let scratch = ''
    beforeAll(() => {
      scratch = mkdtempSync(join(tmpdir(), 'kvgate-k8s-'))
    })
    afterAll(() => rmSync(scratch, { recursive: true, force: true }))

    it('renders a config that parseConfig accepts, with the keys from the Secret', async () => {
      const init = pod['initContainers'].find((c: Doc) => c['name'] === 'render-config')
      const [node, ...flags] = init['command'] as string[]
      expect(node).toBe('node')
      const env = Object.fromEntries(init['env'].map((e: Doc) => [e['name'], e['value']])) as Record<string, string>
      // The paths the script uses are the init container's mounts.
      const mounts = init['volumeMounts'].map((m: Doc) => m['mountPath'] as string)
      for (const path of Object.values(env)) expect(mounts).toContain(posix.dirname(path))
      const rendered = join(scratch, 'kvgate.yaml')
      // Same script, same `yaml` package (the image's working directory /app is the package root, as here).
      const { stdout } = await promisify(execFile)(process.execPath, flags, {
        cwd: repoRoot,
        env: {
          ...process.env,
          KVGATE_BASE_CONFIG: repoPath('deploy/kubernetes/kvgate.yaml'),
          KVGATE_API_KEYS_FILE: repoPath(
            `deploy/kubernetes/${fileOf(kustomization['secretGenerator'][0]['files'][0])}`,
          ),
          KVGATE_RENDERED_CONFIG: rendered,
        },
      })
      expect(stdout).toContain('with 2 API keys')
      const config = parseConfig(parse(readFileSync(rendered, 'utf8')))
      expect(config.identity.apiKeys.map((k) => k.user)).toEqual(['alice', 'bob'])
      expect(config.backends[0]?.url).toBe('http://vllm:8000')
      expect(statSync(rendered).mode & 0o077).toBe(0) // the rendered file holds keys: owner-only
    })
  })

  const kubectl = findExecutable('kubectl')
  if (kubectl === undefined)
    console.warn('[test/deploy] skipping `kubectl kustomize`: kubectl is not on PATH (optional)')
  it.skipIf(kubectl === undefined)(
    'kubectl kustomize builds the overlay with the generated names wired in',
    async () => {
      const result = await runTool(kubectl ?? 'kubectl', ['kustomize', 'deploy/kubernetes'])
      expect(result.code, result.stderr).toBe(0)
      const docs = parseAllDocuments(result.stdout).map((d) => d.toJS() as Doc)
      expect(docs.map((d) => d['kind']).sort()).toEqual(
        [
          'ConfigMap',
          'Deployment',
          'PodDisruptionBudget',
          'PrometheusRule',
          'Secret',
          'Service',
          'Service',
          'Service',
          'ServiceMonitor',
          'StatefulSet',
        ].sort(),
      )
      const configMap = docs.find((d) => d['kind'] === 'ConfigMap') as Doc
      const secret = docs.find((d) => d['kind'] === 'Secret') as Doc
      const built = docs.find((d) => d['kind'] === 'Deployment') as Doc
      const volumes = built['spec']['template']['spec']['volumes'] as Doc[]
      expect(
        volumes
          .map((v) => v['configMap']?.['name'] ?? v['secret']?.['secretName'])
          .filter(Boolean)
          .sort(),
      ).toEqual([configMap['metadata']['name'], secret['metadata']['name']].sort())
      expect(configMap['metadata']['name']).toMatch(new RegExp(`^${configMapName}-\\w+$`))
      parseConfig(parse(configMap['data']['kvgate.yaml']))
    },
  )
})

describe('docker compose files', () => {
  const files = ['deploy/compose/docker-compose.yml', 'deploy/compose/docker-compose.sim.yml']
  const scrape = parse(readRepoFile('deploy/prometheus/prometheus.yml')) as Doc
  const targetsOf = (job: string): string[] =>
    scrape['scrape_configs'].find((c: Doc) => c['job_name'] === job)['static_configs'][0]['targets']

  it.each(files)('%s mounts files that exist and wires kvgate, vllm, prometheus and grafana together', (file) => {
    const compose = parse(readRepoFile(file)) as Doc
    const services = compose['services'] as Record<string, Doc>
    expect(Object.keys(services).sort()).toEqual(['grafana', 'kvgate', 'prometheus', 'redis', 'vllm'])
    for (const [name, service] of Object.entries(services)) {
      for (const volume of (service['volumes'] ?? []) as string[]) {
        const [source] = volume.split(':')
        if (source?.startsWith('.'))
          expect(existsSync(repoPath(posix.join('deploy/compose', source))), `${name}: ${volume}`).toBe(true)
      }
      if (service['build'])
        expect(existsSync(repoPath(posix.join('deploy/compose', service['build']['context'], 'Dockerfile')))).toBe(true)
    }
    // kvgate's config is mounted at the image's config path and passes parseConfig.
    const kvgateMount = (services['kvgate']?.['volumes'] as string[] | undefined)?.find((v) =>
      v.includes(':/etc/kvgate/kvgate.yaml'),
    )
    const config = parseConfig(parse(readRepoFile(posix.join('deploy/compose', kvgateMount?.split(':')[0] ?? ''))))
    // The gateways share their state through the compose service `redis`, which kvgate waits for.
    expect(config.state.store).toBe('redis')
    expect(new URL(config.state.url ?? '').hostname).toBe('redis')
    expect(services['kvgate']?.['depends_on']?.['redis']).toEqual({ condition: 'service_healthy' })
    // Prometheus' scrape targets are these services on these ports: kvgate's admin listener, not its API.
    expect(targetsOf('kvgate')).toEqual([`kvgate:${config.admin.port}`])
    expect(config.admin.host).toBe('0.0.0.0')
    expect(services['kvgate']?.['expose']).toContain(String(config.admin.port))
    expect(services['kvgate']?.['ports']).not.toContain(`${config.admin.port}:${config.admin.port}`)
    expect(config.backends.map((b) => b.url)).toEqual([`http://${targetsOf('vllm')[0]}`])
    expect(services['kvgate']?.['ports']).toContain(`${config.server.port}:${config.server.port}`)
    // Grafana's provisioning finds the dashboard where compose mounts it, and its datasource is this Prometheus.
    const provider = parse(readRepoFile('deploy/grafana/provisioning/dashboards/kvgate.yaml')) as Doc
    const dashboardsMount = (services['grafana']?.['volumes'] as string[] | undefined)?.find((v) =>
      v.startsWith('../grafana/dashboards:'),
    )
    expect(dashboardsMount?.split(':')[1]).toBe(provider['providers'][0]['options']['path'])
    const datasource = (parse(readRepoFile('deploy/grafana/provisioning/datasources/prometheus.yaml')) as Doc)[
      'datasources'
    ][0]
    expect(datasource['url']).toBe('http://prometheus:9090')
    expect(services['prometheus']?.['volumes']).toContain('../prometheus:/etc/prometheus:ro')
  })

  it('the emulator stack runs `kvgate sim` as the vllm service, on the port kvgate polls', () => {
    const services = (parse(readRepoFile('deploy/compose/docker-compose.sim.yml')) as Doc)['services']
    expect(services['vllm']['entrypoint']).toEqual(['node', 'dist/cli.js', 'sim'])
    const command = services['vllm']['command'] as string[]
    expect(command[command.indexOf('--port') + 1]).toBe(targetsOf('vllm')[0]?.split(':')[1])
    expect(command[command.indexOf('--host') + 1]).toBe('0.0.0.0')
  })

  it('the GPU stack reserves an NVIDIA GPU for vLLM', () => {
    const vllm = (parse(readRepoFile('deploy/compose/docker-compose.yml')) as Doc)['services']['vllm']
    expect(vllm['image']).toMatch(/^vllm\/vllm-openai:/)
    expect(vllm['deploy']['resources']['reservations']['devices'][0]).toMatchObject({
      driver: 'nvidia',
      capabilities: ['gpu'],
    })
  })
})
