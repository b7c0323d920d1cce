import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { Command } from 'commander'
import { afterAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { parseConfig } from '../../src/config/index.js'
import { createConfigCommand, createReloadCommand } from '../../src/gateway/index.js'
import { planReload } from '../../src/gateway/reload-plan.js'
import { captureOutput } from '../support/capture.js'
import { freePort } from '../support/net.js'
import { until } from '../support/poll.js'

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'kvgate-config-check-'))
const ALICE_KEY = 'sk-alice-0123456789abcdef'
const ADMIN_TOKEN = 'admin-token-0123456789abcdef'

afterAll(() => rmSync(dir, { recursive: true, force: true }))

function file(name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

const inherited = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('KVGATE_')))

/**
 * `kvgate config …` / `kvgate reload …` run in this process (the real commands, parsed by commander as the
 * CLI does; a child process per call cost seconds each): their exit code, stdout and stderr.
 */
async function kvgate(args: string[], env: Record<string, string> = {}) {
  const saved = { ...process.env }
  for (const key of Object.keys(process.env)) if (key.startsWith('KVGATE_')) delete process.env[key]
  Object.assign(process.env, env)
  try {
    const program = new Command('kvgate').addCommand(createConfigCommand()).addCommand(createReloadCommand())
    const { stdout, stderr, exitCode } = await captureOutput(() => program.parseAsync(['node', 'kvgate', ...args]))
    return { code: exitCode ?? 0, stdout, stderr }
  } finally {
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key]
    Object.assign(process.env, saved)
  }
}

const withSecrets = () =>
  file(
    'secrets.yaml',
    [
      'identity:',
      `  apiKeys: [{ key: ${ALICE_KEY}, user: alice }]`,
      'admin:',
      `  token: ${ADMIN_TOKEN}`,
      'users: [{ name: alice }]',
      '',
    ].join('\n'),
  )

describe('kvgate config check', () => {
  it('exits 1 naming the bad flag, or the variable', async () => {
    const path = withSecrets()
    const flag = await kvgate(['config', 'check', '--config', path, '--deadline-ms', 'soon'])
    expect(flag.code).toBe(1)
    expect(flag.stderr).toContain('--deadline-ms: admission.defaultDeadlineMs: must be integer')
    expect(flag.stdout).toBe('')
    const variable = await kvgate(['config', 'check', '--config', path], { KVGATE_POLICY: 'lottery' })
    expect(variable.code).toBe(1)
    expect(variable.stderr).toContain('KVGATE_POLICY: policy.name: unknown policy "lottery"')
  })

  it('exits 0 printing the effective config, flags and variables applied, secrets redacted', async () => {
    const result = await kvgate(
      ['config', 'check', '--config', withSecrets(), '--policy', 'vtc', '--headroom', '0.1', '--quantile', '0.95'],
      { KVGATE_PORT: '9999' },
    )
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/^# kvgate config check: OK \(.*secrets\.yaml \+ KVGATE_PORT \+ flags\)\n/)
    expect(result.stdout).not.toContain(ALICE_KEY)
    expect(result.stdout).not.toContain(ADMIN_TOKEN)
    const printed = parse(result.stdout) as Record<string, Record<string, unknown>>
    expect(printed['server']?.['port']).toBe(9999)
    expect(printed['policy']?.['name']).toBe('vtc')
    expect(printed['admission']?.['headroomRatio']).toBe(0.1)
    expect(printed['predictor']?.['quantile']).toBe(0.95)
    expect(printed['admin']?.['token']).toBe('[redacted]')
    expect(printed['identity']?.['apiKeys']).toEqual([{ key: '[redacted]', user: 'alice' }])
    // The start-up warnings serve would log, said here too.
    expect(result.stderr).toContain('warning: identity.requireAuth is off')
  })
})

describe('kvgate reload', () => {
  let server: ChildProcess | undefined
  afterAll(() => {
    server?.kill('SIGTERM')
  })

  it('makes the running gateway re-read its file through POST /admin/reload, with the admin token', async () => {
    const adminPort = await freePort()
    const yaml = (policy: string) =>
      [`admin: { port: ${adminPort}, token: ${ADMIN_TOKEN} }`, `policy: { name: ${policy} }`, ''].join('\n')
    const path = file('running.yaml', yaml('fifo'))
    // A fixed public port: with port 0 the admin listener takes an ephemeral one too.
    const port = String(await freePort())
    server = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--config', path, '--port', port], {
      env: { ...inherited, KVGATE_LOG_LEVEL: 'warn' },
      stdio: 'ignore',
    })
    const admin = `http://127.0.0.1:${adminPort}`
    await until(async () => ((await request(`${admin}/livez`)).statusCode === 200 ? true : undefined), {
      timeoutMs: 30_000,
      tolerateErrors: true,
      what: 'the gateway to listen',
    })
    // The route is behind the token like every admin route.
    const anonymous = await request(`${admin}/admin/reload`, { method: 'POST' })
    await anonymous.body.dump()
    expect(anonymous.statusCode).toBe(401)

    writeFileSync(path, yaml('vtc'))
    const reloaded = await kvgate(['reload', '--config', path])
    expect(reloaded).toMatchObject({ code: 0, stdout: 'kvgate reload: reloaded (policy vtc)\n' })

    writeFileSync(path, yaml('lottery'))
    const refused = await kvgate(['reload', '--config', path, '--admin-url', admin], {
      KVGATE_ADMIN_TOKEN: ADMIN_TOKEN,
    })
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain('422: The config was not reloaded:')
    expect(refused.stderr).toContain('policy.name: unknown policy "lottery"')

    const nobody = await kvgate(['reload', '--admin-url', `http://127.0.0.1:${await freePort()}`])
    expect(nobody.code).toBe(1)
    expect(nobody.stderr).toContain('cannot reach the admin listener')
  })
})

describe('the reload warning', () => {
  it('compares with what runs: a file restored to it needs no restart', () => {
    const started = parseConfig({ backends: [{ url: 'http://a:8000' }] })
    const edited = parseConfig({ backends: [{ url: 'http://b:8000' }] })
    const restored = parseConfig({ backends: [{ url: 'http://a:8000' }] })
    expect(planReload(started, edited, started).needsRestart).toEqual(['backends'])
    expect(planReload(edited, restored, started).needsRestart).toEqual([])
  })
})
