import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { ConfigWatcher } from '../../src/config/index.js'
import { until, watchConfig } from './support.js'

describe('config reload', () => {
  let watcher: ConfigWatcher | undefined
  afterEach(() => watcher?.close())

  it('reads a changed file, and refuses a bad one without calling onReload', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvgate-reload-'))
    const path = join(dir, 'kvgate.yaml')
    writeFileSync(path, 'users: [{ name: alice }]\n')
    const { reloaded, refused, ...watched } = watchConfig(path)
    watcher = watched.watcher

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
