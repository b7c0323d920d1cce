import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { createConfigWatcher, type ConfigWatcher, type KvgateConfig } from '../../src/config/index.js'
import type { KvgateError } from '../../src/errors/index.js'

async function until<T>(probe: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe('config reload', () => {
  let watcher: ConfigWatcher | undefined
  afterEach(() => watcher?.close())

  it('reads a changed file, and refuses a bad one without calling onReload', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvgate-reload-'))
    const path = join(dir, 'kvgate.yaml')
    writeFileSync(path, 'users: [{ name: alice }]\n')
    const reloaded: KvgateConfig[] = []
    const refused: KvgateError[] = []
    watcher = createConfigWatcher({
      path,
      env: {},
      debounceMs: 20,
      onReload: (config) => reloaded.push(config),
      onError: (err) => refused.push(err),
    })

    writeFileSync(path, 'users: [{ name: alice, weight: 3 }]\n')
    const config = await until(() => reloaded.at(-1))
    expect(config.users[0]?.weight).toBe(3)

    const before = reloaded.length
    writeFileSync(path, 'users: [{ name: alice, weight: -1 }]\n')
    const err = await until(() => refused.at(-1))
    expect(err.message).toContain('users.0.weight: must be > 0')
    expect(reloaded.length).toBe(before)

    // SIGHUP path: an explicit reload reads the file now.
    writeFileSync(path, 'policy: { name: fifo }\nusers: [{ name: bob }]\n')
    expect(watcher.reload()?.users[0]?.name).toBe('bob')
  })
})
