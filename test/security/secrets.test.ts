import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { ADMIN_TOKEN, ALICE_KEY, BOB_KEY, rawJson, until } from './support.js'

const SECRETS = [ALICE_KEY, BOB_KEY, ADMIN_TOKEN]

const config = (backend: string, extra = '') =>
  [
    `backends: [ { url: ${backend}, name: sim0 } ]`,
    'metricsPoll: { intervalMs: 50 }',
    'healthCheck: { intervalMs: 200 }',
    `admin: { token: ${ADMIN_TOKEN} }`,
    'identity:',
    '  requireAuth: true',
    '  apiKeys:',
    `    - { key: ${ALICE_KEY}, user: alice }`,
    `    - { key: ${BOB_KEY}, user: bob }`,
    'users: [ { name: alice }, { name: bob } ]',
    'telemetry: { logLevel: trace }',
    extra,
  ].join('\n')

/**
 * The whole process's output, at the most verbose level, after an attack run: no configured key and no
 * admin token in any line, whatever the attacker (or a careless client) put where: in the path, the query,
 * the model name, a broken JSON body, the identity or deadline header, a refused reload of the config.
 */
describe('no key in any log line, error message or /debug', () => {
  let child: ChildProcess | undefined
  let sim: SimHandle | undefined
  afterEach(async () => {
    child?.kill('SIGKILL')
    await sim?.close()
  })

  it('holds for a real kvgate serve through an attack run and a refused reload', async () => {
    sim = await startSim({ speed: 20, numGpuBlocks: 256, logger: false })
    const dir = mkdtempSync(join(tmpdir(), 'kvgate-secrets-attack-'))
    const path = join(dir, 'kvgate.yaml')
    writeFileSync(path, config(sim.url))
    const cli = fileURLToPath(new URL('../../src/cli.ts', import.meta.url))
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('KVGATE_')))
    child = spawn(
      process.execPath,
      ['--import', 'tsx', cli, 'serve', '--config', path, '--port', '0', '--host', '127.0.0.1'],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    const lines: string[] = []
    let stderr = ''
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    createInterface({ input: child.stdout! }).on('line', (line) => lines.push(line))
    const records = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>)
    const listening = await until(() => records().find((r) => r['msg'] === 'kvgate listening'), 20_000)
    const url = String(listening['url'])
    const admin = String(listening['admin'])
    await until(async () => ((await request(`${url}/health`)).statusCode === 200 ? true : undefined), 10_000)

    const alice = { authorization: `Bearer ${ALICE_KEY}` }
    const answers: string[] = []
    const attack = async (method: string, target: string, body?: unknown, headers: Record<string, string> = {}) => {
      const response = await rawJson(url, method, target, body, headers)
      answers.push(response.body)
      return response
    }
    // Guessing and misplacing keys.
    await attack('GET', '/v1/models', undefined, { authorization: `Bearer ${ALICE_KEY}x` })
    await attack('GET', '/v1/models', undefined, { authorization: `Basic ${ALICE_KEY}` })
    await attack('POST', `/v1/${BOB_KEY}/completions`, { prompt: 'x' }, alice)
    await attack('GET', `/v1/models?api_key=${BOB_KEY}`, undefined, alice)
    await attack('GET', `/${ADMIN_TOKEN}`, undefined, alice)
    await attack('POST', '/v1/chat/completions', { model: BOB_KEY, messages: [{ role: 'user', content: 'x' }] }, alice)
    await attack(
      'POST',
      '/v1/chat/completions',
      { messages: [{ role: 'user', content: 'x' }], user: BOB_KEY },
      {
        ...alice,
        'x-user-id': BOB_KEY,
        'x-kvgate-deadline-ms': BOB_KEY,
      },
    )
    const badJson = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...alice },
      body: `{"messages": ${BOB_KEY}}`,
    })
    answers.push(await badJson.text())
    expect(badJson.status).toBe(400)
    // The admin listener, with and without its token, and what /debug shows.
    answers.push(await (await fetch(`${admin}/metrics`, { headers: alice })).text())
    const debug = await fetch(`${admin}/debug/reservations`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
    expect(debug.status).toBe(200)
    answers.push(await debug.text())

    // Reloads refused: a duplicate key, a YAML error on the line of a key.
    const refusals = () => records().filter((r) => r['msg'] === 'config refused; the old config stays')
    writeFileSync(path, config(sim.url, `  # duplicate\n`).replace(`key: ${BOB_KEY}`, `key: ${ALICE_KEY}`))
    await until(() => refusals()[0], 10_000)
    writeFileSync(path, config(sim.url).replace(`- { key: ${BOB_KEY}, user: bob }`, `- key: ${BOB_KEY} : x`))
    await until(() => refusals()[1], 10_000)
    expect(String(refusals()[0]?.['error'])).toContain('identity.apiKeys.1.key: duplicate of identity.apiKeys.0.key')
    expect(String(refusals()[1]?.['error'])).toContain('not valid YAML')
    // Still serving, with the config it had.
    expect((await rawJson(url, 'GET', '/v1/models', undefined, alice)).status).toBe(200)

    child.kill('SIGTERM')
    await new Promise((resolve) => child?.once('exit', resolve))
    const output = `${lines.join('\n')}\n${stderr}`
    expect(records().some((r) => r['msg'] === 'request answered')).toBe(true) // trace level: every line is there
    expect(records().some((r) => r['msg'] === 'kvgate stopped')).toBe(true)
    for (const secret of SECRETS) {
      expect(output.includes(secret), `a log line holds ${secret.slice(0, 6)}…`).toBe(false)
      for (const answer of answers)
        expect(answer.includes(secret), `an answer holds ${secret.slice(0, 6)}…`).toBe(false)
    }
    // The places a secret was put were answered, with the secret masked where the answer echoes them.
    expect(answers.some((a) => a.includes('[redacted]'))).toBe(true)
    rmSync(dir, { recursive: true, force: true })
  }, 60_000)
})
