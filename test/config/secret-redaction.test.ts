import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { type ConfigWatcher, loadConfig } from '../../src/config/index.js'
import { KvgateError } from '../../src/errors/index.js'
import { until, watchConfig } from './support.js'

// Keys as an operator would write them; none may appear in any error or log line below.
const ALICE = 'sk-alice-7f3a9c1e5b'
const BOB = 'sk-bob-2d8e4f6a0c'
const KEYS = [ALICE, BOB]
const VALID = `identity:\n  apiKeys:\n    - { key: ${ALICE}, user: alice }\n    - { key: ${BOB}, user: bob }\n`

/** Bad files that hold keys, each with a part of the message that says what is wrong. */
const BAD_FILES: readonly { name: string; text: string; says: string }[] = [
  {
    name: 'a duplicate key',
    text: `identity:\n  apiKeys:\n    - { key: ${ALICE}, user: alice }\n    - { key: ${ALICE}, user: bob }\n`,
    says: 'identity.apiKeys.1.key: duplicate of identity.apiKeys.0.key',
  },
  {
    name: 'a YAML error on the line of a key',
    text: `identity:\n  apiKeys:\n    - key: ${ALICE} : x\n      user: alice\n`,
    says: 'not valid YAML: Nested mappings are not allowed in compact mappings at line 3, column 12',
  },
  {
    name: 'an unclosed quote before a key',
    text: `identity:\n  apiKeys:\n    - { key: ${BOB}, user: bob }\n    - key: "${ALICE}\n`,
    says: 'not valid YAML',
  },
  {
    name: 'a key written as a field name',
    text: `identity:\n  apiKeys:\n    - ${ALICE}: alice\n`,
    says: 'identity.apiKeys.0: has an unknown field (its name is not shown)',
  },
  {
    name: 'a key too short',
    text: 'identity:\n  apiKeys:\n    - { key: sk-1234, user: alice }\n',
    says: 'identity.apiKeys.0.key: must NOT have fewer than 8 characters',
  },
  {
    name: 'a key pasted where a name goes',
    text: `${VALID}policy: { name: ${BOB} }\nusers: [{ name: "${ALICE}!" }]\n`,
    says: 'policy.name: unknown policy "[redacted]"',
  },
]

function refusal(path: string): string {
  try {
    loadConfig(path, {}, {})
  } catch (err) {
    expect(err).toBeInstanceOf(KvgateError)
    return (err as KvgateError).message
  }
  throw new Error(`${path} was accepted`)
}

describe('a refused config never shows an API key', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvgate-secrets-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  let watcher: ConfigWatcher | undefined
  afterEach(() => watcher?.close())

  it.each(BAD_FILES)('at load: $name', ({ name, text, says }) => {
    const path = join(dir, `${name.replaceAll(' ', '-')}.yaml`)
    writeFileSync(path, text)
    const message = refusal(path)
    expect(message).toContain(says)
    for (const key of KEYS) expect(message).not.toContain(key)
    // Not even a recognisable part of one.
    expect(message).not.toMatch(/sk-(alice|bob)/)
  })

  it('at reload: the refusal the watcher reports names the field, not the key', async () => {
    const path = join(dir, 'watched.yaml')
    writeFileSync(path, VALID)
    const { refused, ...watched } = watchConfig(path)
    watcher = watched.watcher
    writeFileSync(path, BAD_FILES[0]?.text ?? '')
    const err = await until(() => refused.at(-1))
    expect(err.message).toContain('identity.apiKeys.1.key: duplicate of identity.apiKeys.0.key')
    for (const key of KEYS) expect(err.message).not.toContain(key)
  })
})

describe('kvgate serve refusing reloads', () => {
  let child: ChildProcess | undefined
  afterEach(() => {
    child?.kill('SIGKILL')
  })

  it('logs each refusal with its reason and no key, and keeps serving', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvgate-serve-reload-'))
    const path = join(dir, 'kvgate.yaml')
    writeFileSync(path, VALID)
    const cli = fileURLToPath(new URL('../../src/cli.ts', import.meta.url))
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('KVGATE_')))
    child = spawn(
      process.execPath,
      ['--import', 'tsx', cli, 'serve', '--config', path, '--port', '0', '--host', '127.0.0.1'],
      {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    const lines: string[] = []
    let stderr = ''
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const messages = (): { msg?: string; error?: string; url?: string }[] =>
      lines.map((line) => JSON.parse(line) as { msg?: string; error?: string; url?: string })
    createInterface({ input: child.stdout! }).on('line', (line) => lines.push(line))
    const refusals = () => messages().filter((m) => m.msg === 'config refused; the old config stays')

    await until(() => messages().find((m) => m.msg === 'kvgate listening'), 20_000)
    const reloads = [
      { text: BAD_FILES[0]?.text ?? '', says: 'identity.apiKeys.1.key: duplicate of identity.apiKeys.0.key' },
      { text: BAD_FILES[1]?.text ?? '', says: 'not valid YAML' },
      // A cross-field rule, refused on reload as at start-up.
      {
        text: `${VALID}predictor: { windowSize: 10 }\n`,
        says: 'predictor.windowSize: must be >= predictor.minSamples (20)',
      },
    ]
    for (const [i, reload] of reloads.entries()) {
      writeFileSync(path, reload.text)
      const refusal = await until(() => refusals()[i], 10_000)
      expect(refusal.error).toContain(`${path}: ${reload.says}`)
    }
    // Still serving with the config it had.
    const url = messages().find((m) => m.msg === 'kvgate listening')?.url
    expect((await fetch(`${url}/health`)).status).toBe(200)

    const everything = `${lines.join('\n')}\n${stderr}`
    for (const key of KEYS) expect(everything).not.toContain(key)
    rmSync(dir, { recursive: true, force: true })
  }, 40_000)
})
