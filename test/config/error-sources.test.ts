import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { FLAG_OVERRIDES, loadConfig } from '../../src/config/index.js'
import { KvgateError } from '../../src/errors/index.js'
import { createServeCommand } from '../../src/gateway/index.js'

const VALID = '(valid: fifo, tpm, vtc, dynamic-tpm)'

function problemOf(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(KvgateError)
    return (err as KvgateError).message
  }
  throw new Error('expected an invalid_config error')
}

/** `kvgate serve …` as a process that fails at start-up: its exit code and what it wrote to stderr. */
async function serveFails(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stderr: string }> {
  const cli = fileURLToPath(new URL('../../src/cli.ts', import.meta.url))
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('KVGATE_')))
  const child = spawn(process.execPath, ['--import', 'tsx', cli, 'serve', '--port', '0', ...args], {
    env: { ...inherited, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  return { code, stderr }
}

/** Each problem names where its field was set: a flag, a variable, or the file. */
describe('config errors name their source', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvgate-sources-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const empty = join(dir, 'empty.yaml')
  writeFileSync(empty, '')

  it('a variable, not the file it was laid over', () => {
    expect(problemOf(() => loadConfig(empty, {}, { KVGATE_POLICY: 'foo' }))).toBe(
      `Invalid configuration: KVGATE_POLICY: policy.name: unknown policy "foo" ${VALID}`,
    )
    expect(
      problemOf(() => loadConfig(empty, {}, { KVGATE_PORT: '80a', KVGATE_BACKENDS: 'http://a:1,vllm:8000' })),
    ).toBe(
      'Invalid configuration: KVGATE_PORT: server.port: must be integer; ' +
        'KVGATE_BACKENDS: backends.1.url: must match pattern "^https?://[^\\s/]+(/.*)?$"',
    )
  })

  it('a flag, over the variable and the file', () => {
    writeFileSync(join(dir, 'vtc.yaml'), 'policy: { name: vtc }\n')
    expect(
      problemOf(() => loadConfig(join(dir, 'vtc.yaml'), { policy: { name: 'foo' } }, { KVGATE_POLICY: 'bar' })),
    ).toBe(`Invalid configuration: --policy: policy.name: unknown policy "foo" ${VALID}`)
    expect(
      problemOf(() => loadConfig(undefined, { server: { port: 70000 }, telemetry: { logLevel: 'x' } }, {})),
    ).toContain('--port: server.port: must be <= 65535; --log-level: telemetry.logLevel: must be one of')
    // An override no flag sets (a test's, a library caller's) is still told apart from the file.
    expect(problemOf(() => loadConfig(empty, { predictor: { coldStartOutputTokens: 0 } }, {}))).toBe(
      'Invalid configuration: command line: predictor.coldStartOutputTokens: must be >= 1',
    )
  })

  it('the file for what it set, and for a rule about a field nobody set', () => {
    const path = join(dir, 'mixed.yaml')
    writeFileSync(path, 'server: { prot: 1 }\npredictor: { minSamples: 5000 }\n')
    expect(problemOf(() => loadConfig(path, {}, { KVGATE_LOG_LEVEL: 'loud' }))).toBe(
      `Invalid configuration: ${path}: server.prot: unknown field; ` +
        `${path}: predictor.windowSize: must be >= predictor.minSamples (5000); ` +
        'KVGATE_LOG_LEVEL: telemetry.logLevel: must be one of "fatal", "error", "warn", "info", "debug", "trace", "silent"',
    )
    // A rule broken by a default is blamed on whoever set the other field of the same section.
    expect(problemOf(() => loadConfig(path, { identity: { requireAuth: true } }, {}))).toContain(
      'command line: identity.apiKeys: must not be empty (when identity.requireAuth is true)',
    )
  })

  it('knows every flag of kvgate serve that sets a field', () => {
    const flags = createServeCommand().options.map((option) => option.long)
    for (const flag of Object.keys(FLAG_OVERRIDES)) expect(flags).toContain(flag)
  })

  it('kvgate serve exits 1 naming the flag or the variable', async () => {
    const [flag, variable] = await Promise.all([
      serveFails(['--config', empty, '--policy', 'foo']),
      serveFails(['--config', empty], { KVGATE_POLICY: 'foo' }),
    ])
    expect(flag.code).toBe(1)
    expect(flag.stderr).toBe(
      `kvgate serve: Invalid configuration: --policy: policy.name: unknown policy "foo" ${VALID}\n`,
    )
    expect(variable.code).toBe(1)
    expect(variable.stderr).toBe(
      `kvgate serve: Invalid configuration: KVGATE_POLICY: policy.name: unknown policy "foo" ${VALID}\n`,
    )
  }, 30_000)
})
