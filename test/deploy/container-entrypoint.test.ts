import { spawn, type ChildProcess } from 'node:child_process'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  statSync,
} from 'node:fs'
import { builtinModules } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { findExecutable, freePort, pollUntil, readRepoFile, repoPath, runTool } from './support.js'

/**
 * The image's command line without Docker: `npm run build` into a directory laid out like the image's /app
 * (package.json, dist/, node_modules), then the Dockerfile's ENTRYPOINT with the baked-in config, probed with
 * the Dockerfile's own HEALTHCHECK one-liner, and stopped with its STOPSIGNAL. Also checks that the built code
 * imports only packages the runtime stage installs (`dependencies`, not `devDependencies`).
 */
const dockerfile = readRepoFile('Dockerfile').replace(/\\\n/g, ' ')
const entrypoint = JSON.parse(/^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(dockerfile)?.[1] ?? '[]') as string[]
const healthcheck = JSON.parse(/^HEALTHCHECK\s.*?\bCMD\s+(\[.*\])\s*$/m.exec(dockerfile)?.[1] ?? '[]') as string[]
const stopSignal = (/^STOPSIGNAL\s+(\S+)/m.exec(dockerfile)?.[1] ?? '') as NodeJS.Signals
const npm = findExecutable('npm')

function jsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return jsFiles(path)
    return name.endsWith('.js') ? [path] : []
  })
}

describe.skipIf(npm === undefined)("the image's entrypoint, run from an /app-like directory", () => {
  let scratch = ''
  let app = ''
  let server: ChildProcess | undefined
  let output = ''
  let exitCode: number | null | undefined
  let exited: Promise<void> = Promise.resolve()

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'kvgate-image-'))
    app = join(scratch, 'app')
    mkdirSync(app)
    // The build stage runs `npm run build`; here its output goes to app/dist instead of the shared tree's dist/.
    const build = await runTool(npm ?? 'npm', ['run', 'build', '--', '--outDir', join(app, 'dist')], {
      timeoutMs: 90_000,
    })
    if (!existsSync(join(app, 'dist', 'cli.js')))
      throw new Error(`npm run build produced no dist/cli.js:\n${build.stdout}${build.stderr}`)
    copyFileSync(repoPath('package.json'), join(app, 'package.json'))
    symlinkSync(repoPath('node_modules'), join(app, 'node_modules'), 'dir')
  }, 120_000)

  afterAll(async () => {
    if (server !== undefined && exitCode === undefined) {
      server.kill('SIGKILL')
      await exited
    }
    if (scratch !== '') rmSync(scratch, { recursive: true, force: true })
  })

  it('the built code imports only production dependencies and Node built-ins', () => {
    const pkg = JSON.parse(readRepoFile('package.json')) as { dependencies: Record<string, string> }
    const builtins = new Set(builtinModules)
    const imported = new Set<string>()
    for (const file of jsFiles(join(app, 'dist'))) {
      const text = readFileSync(file, 'utf8')
      // Static `import … from 'x'` / `export … from 'x'` / `import 'x'` statements and dynamic `import('x')`.
      const statements =
        /^\s*(?:import|export)\s+(?:[^'";]*?\sfrom\s*)?['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm
      for (const match of text.matchAll(statements)) {
        const specifier = match[1] ?? match[2] ?? ''
        if (specifier.startsWith('.') || specifier.startsWith('node:') || builtins.has(specifier)) continue
        const parts = specifier.split('/')
        imported.add(specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier))
      }
    }
    expect(imported.size).toBeGreaterThan(3)
    for (const name of imported)
      expect(Object.keys(pkg.dependencies), `${name} is imported by dist/ but is not a dependency`).toContain(name)
  })

  it('starts with the baked-in config, passes the HEALTHCHECK, serves, and stops cleanly on STOPSIGNAL', async () => {
    expect(entrypoint.slice(0, 3)).toEqual(['node', 'dist/cli.js', 'serve'])
    const configAt = entrypoint.indexOf('--config') + 1
    const config = join(scratch, 'kvgate.yaml')
    copyFileSync(repoPath('deploy/docker/kvgate.yaml'), config) // what the image has at /etc/kvgate/kvgate.yaml
    const args = entrypoint.slice(1).map((arg, i) => (i + 1 === configAt ? config : arg))
    const port = await freePort()
    const adminPort = await freePort()
    // `docker run kvgate --port N --host 127.0.0.1`: flags after the image name are appended to the entrypoint.
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('KVGATE_')))
    server = spawn(
      process.execPath,
      [...args, '--port', String(port), '--host', '127.0.0.1', '--admin-port', String(adminPort)],
      {
        cwd: app,
        env: { ...env, NODE_ENV: 'production' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    server.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()))
    server.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()))
    exited = new Promise((resolve) =>
      server?.once('exit', (code) => {
        exitCode = code
        resolve()
      }),
    )

    // The HEALTHCHECK command exactly as written, with the image's port 8080 swapped for this test's port.
    expect(healthcheck[0]).toBe('node')
    const probe = healthcheck.map((arg) => arg.replace('127.0.0.1:8080', `127.0.0.1:${port}`))
    await pollUntil(
      'the HEALTHCHECK to pass',
      async () => {
        if (exitCode !== undefined) throw new Error(`kvgate exited with ${exitCode}:\n${output}`)
        const result = await runTool(process.execPath, probe.slice(1), { timeoutMs: 5_000 })
        return result.code === 0 ? true : undefined
      },
      { timeoutMs: 30_000, intervalMs: 300 },
    )
    // No backend in the baked-in config: the in-process emulator answers, and the first log line says so.
    expect(output).toMatch(/built-in vLLM emulator/)
    const models = await fetch(`http://127.0.0.1:${port}/v1/models`)
    expect(models.status).toBe(200)
    // /metrics is on the admin listener (loopback), not on the API port.
    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(404)
    expect((await fetch(`http://127.0.0.1:${adminPort}/metrics`)).status).toBe(200)

    expect(stopSignal).toBe('SIGTERM')
    server.kill(stopSignal)
    await exited
    expect(exitCode, output).toBe(0)
  }, 60_000)
})
