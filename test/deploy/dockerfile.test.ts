import { existsSync, readdirSync, statSync } from 'node:fs'
import { posix } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { parseConfig } from '../../src/config/index.js'
import { readRepoFile, repoPath } from './support.js'

/**
 * No Docker engine runs here, so this checks what can be checked without one: the stages and base image,
 * that every file the Dockerfile copies exists and survives .dockerignore, that the entrypoint is the path
 * `npm run build` really produces, the non-root user, and that the health check, port and config agree.
 */
interface Instruction {
  keyword: string
  args: string
  stage: number
}

function parseDockerfile(text: string): { instructions: Instruction[]; args: Map<string, string> } {
  const logical = text
    .replace(/\\\r?\n/g, ' ') // line continuations
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith('#'))
  const instructions: Instruction[] = []
  const args = new Map<string, string>()
  let stage = -1
  for (const line of logical) {
    const match = /^(\w+)\s+(.*)$/.exec(line)
    if (match === null) continue
    const keyword = (match[1] ?? '').toUpperCase()
    const rest = match[2] ?? ''
    if (keyword === 'FROM') stage += 1
    if (keyword === 'ARG' && stage === -1) {
      const [name, value] = rest.split('=', 2)
      if (name !== undefined && value !== undefined) args.set(name, value)
    }
    instructions.push({ keyword, args: rest, stage })
  }
  return { instructions, args }
}

/** .dockerignore semantics: patterns in order, the last one matching a path or one of its parents wins. */
function dockerIgnored(path: string, patterns: readonly string[]): boolean {
  const toRegex = (glob: string): RegExp =>
    new RegExp(
      '^' +
        glob
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*\*/g, '\u0001')
          .replace(/\*/g, '[^/]*')
          .replace(/\?/g, '[^/]')
          .replaceAll('\u0001', '.*') +
        '$',
    )
  const parts = posix.normalize(path).split('/')
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'))
  let ignored = false
  for (const raw of patterns) {
    const negated = raw.startsWith('!')
    const pattern = posix.normalize(negated ? raw.slice(1) : raw).replace(/\/$/, '')
    const regex = toRegex(pattern)
    if (prefixes.some((prefix) => regex.test(prefix))) ignored = !negated
  }
  return ignored
}

function filesUnder(relative: string): string[] {
  const absolute = repoPath(relative)
  if (!statSync(absolute).isDirectory()) return [relative]
  return readdirSync(absolute).flatMap((name) => filesUnder(posix.join(relative, name)))
}

const { instructions, args } = parseDockerfile(readRepoFile('Dockerfile'))
const dockerignore = readRepoFile('.dockerignore')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line.length > 0 && !line.startsWith('#'))
const stages = instructions.filter((i) => i.keyword === 'FROM')
const finalStage = stages.length - 1
const inFinal = (keyword: string): Instruction[] =>
  instructions.filter((i) => i.keyword === keyword && i.stage === finalStage)
const only = <T>(items: readonly T[], what: string): T => {
  expect(items, what).toHaveLength(1)
  return items[0] as T
}
const execForm = (instruction: Instruction): string[] => JSON.parse(instruction.args) as string[]

describe('Dockerfile', () => {
  it('builds in one stage and runs on a Node 24 slim image in another', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2)
    for (const stage of stages) {
      const image = stage.args.split(/\s+/)[0] ?? ''
      const resolved = image.replace(/^\$\{(\w+)\}$/, (_, name: string) => args.get(name) ?? '')
      expect(resolved).toMatch(/^node:24-[\w.-]*slim$/)
    }
  })

  it('copies only files that exist and that .dockerignore lets into the build context', () => {
    const copies = instructions.filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'))
    expect(copies.length).toBeGreaterThan(0)
    for (const copy of copies) {
      const sources = copy.args
        .split(/\s+/)
        .filter((word) => !word.startsWith('--'))
        .slice(0, -1)
      for (const source of sources) {
        expect(existsSync(repoPath(source)), `${source} (COPY ${copy.args})`).toBe(true)
        for (const file of filesUnder(source)) {
          expect(dockerIgnored(file, dockerignore), `${file} is excluded by .dockerignore`).toBe(false)
        }
      }
    }
    // …and the allow-list really keeps the heavy and private things out.
    for (const excluded of ['node_modules/yaml/package.json', '.git/HEAD', 'test/deploy/support.ts', 'dist/cli.js']) {
      expect(dockerIgnored(excluded, dockerignore), excluded).toBe(true)
    }
  })

  it('installs only production dependencies, without running scripts, in the runtime stage', () => {
    const installs = inFinal('RUN').filter((run) => /\bnpm ci\b/.test(run.args))
    expect(only(installs, 'npm ci in the runtime stage').args).toMatch(/--omit=dev/)
    expect(installs[0]?.args).toMatch(/--ignore-scripts/) // `prepare` would need TypeScript
  })

  it('starts the CLI that `npm run build` produces, with `serve` and the documented config path', () => {
    const pkg = JSON.parse(readRepoFile('package.json')) as {
      scripts: Record<string, string>
      bin: Record<string, string>
    }
    const tsconfig = JSON.parse(readRepoFile('tsconfig.build.json')) as {
      compilerOptions: { rootDir: string; outDir: string }
    }
    expect(pkg.scripts['build']).toBe('tsc -p tsconfig.build.json')
    const builtCli = posix
      .join(tsconfig.compilerOptions.outDir, posix.relative(tsconfig.compilerOptions.rootDir, 'src/cli.ts'))
      .replace(/\.ts$/, '.js')
    expect(builtCli).toBe('dist/cli.js')
    expect(pkg.bin['kvgate']).toBe(builtCli)

    const entrypoint = execForm(only(inFinal('ENTRYPOINT'), 'ENTRYPOINT'))
    expect(entrypoint.slice(0, 3)).toEqual(['node', builtCli, 'serve'])
    const configPath = entrypoint[entrypoint.indexOf('--config') + 1]
    expect(configPath).toBe('/etc/kvgate/kvgate.yaml')

    // The build stage's output lands where the entrypoint looks for it, next to the package.json the CLI reads.
    const workdir = only(inFinal('WORKDIR'), 'WORKDIR').args
    const buildWorkdir = instructions.find((i) => i.keyword === 'WORKDIR' && i.stage === 0)?.args ?? ''
    const fromBuild = inFinal('COPY').find((c) => c.args.startsWith('--from='))
    expect(fromBuild?.args.split(/\s+/).slice(1)).toEqual([
      posix.join(buildWorkdir, tsconfig.compilerOptions.outDir),
      `./${posix.dirname(builtCli)}`,
    ])
    expect(inFinal('COPY').some((c) => /\bpackage\.json\b/.test(c.args) && c.args.trim().endsWith('./'))).toBe(true)
    expect(workdir).toBe('/app')
  })

  it('bakes in a default config at that path that parseConfig accepts', () => {
    const copy = inFinal('COPY').find((c) => c.args.trim().endsWith(' /etc/kvgate/kvgate.yaml'))
    const source = copy?.args.split(/\s+/)[0] ?? ''
    expect(source).toBe('deploy/docker/kvgate.yaml')
    const config = parseConfig(parse(readRepoFile(source)))
    expect(config.server.host).toBe('0.0.0.0') // reachable from outside the container
    expect(config.server.port).toBe(8080)
  })

  it('runs as an unprivileged user', () => {
    const user = only(inFinal('USER'), 'USER').args.trim()
    expect(user).not.toMatch(/^(root|0)(:.*)?$/)
    const userIndex = instructions.findIndex((i) => i.keyword === 'USER' && i.stage === finalStage)
    const entryIndex = instructions.findIndex((i) => i.keyword === 'ENTRYPOINT')
    expect(userIndex).toBeLessThan(entryIndex)
  })

  it('exposes the API and admin ports, probes /health on the API port and stops with SIGTERM', () => {
    const config = parseConfig(parse(readRepoFile('deploy/docker/kvgate.yaml')))
    const port = config.server.port
    expect(only(inFinal('EXPOSE'), 'EXPOSE').args.trim()).toBe(`${port} ${config.admin.port}`)
    // The baked-in admin listener stays on loopback: /metrics and /debug are not reachable from outside.
    expect(config.admin.host).toBe('127.0.0.1')
    const healthcheck = only(inFinal('HEALTHCHECK'), 'HEALTHCHECK').args
    expect(healthcheck).toContain(`http://127.0.0.1:${port}/health`)
    // The probe is Node's fetch, since the slim image has no curl or wget; it must exit non-zero on failure.
    expect(healthcheck).toMatch(/CMD \["node", "-e", .*process\.exit\(1\)/)
    expect(only(inFinal('STOPSIGNAL'), 'STOPSIGNAL').args.trim()).toBe('SIGTERM')
  })
})
