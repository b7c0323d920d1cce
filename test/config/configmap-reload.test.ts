import { mkdirSync, mkdtempSync, renameSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { createConfigWatcher, type ConfigWatcher, type KvgateConfig } from '../../src/config/index.js'

async function until<T>(probe: () => T | undefined, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe('config reload from a Kubernetes ConfigMap volume', () => {
  let watcher: ConfigWatcher | undefined
  afterEach(() => watcher?.close())

  it('sees an update, which swaps the ..data symlink and never touches the file name itself', async () => {
    // The kubelet's layout: kvgate.yaml -> ..data/kvgate.yaml, ..data -> ..<timestamp>/ (atomic writer).
    const dir = mkdtempSync(join(tmpdir(), 'kvgate-configmap-'))
    mkdirSync(join(dir, '..2026_01_01_v1'))
    writeFileSync(join(dir, '..2026_01_01_v1', 'kvgate.yaml'), 'users: [{ name: alice }]\n')
    symlinkSync('..2026_01_01_v1', join(dir, '..data'))
    symlinkSync(join('..data', 'kvgate.yaml'), join(dir, 'kvgate.yaml'))
    const reloaded: KvgateConfig[] = []
    watcher = createConfigWatcher({
      path: join(dir, 'kvgate.yaml'),
      env: {},
      debounceMs: 20,
      onReload: (config) => reloaded.push(config),
      onError: () => {},
    })

    // An update as the kubelet makes it: a new timestamped directory, then ..data_tmp renamed over ..data.
    mkdirSync(join(dir, '..2026_01_01_v2'))
    writeFileSync(join(dir, '..2026_01_01_v2', 'kvgate.yaml'), 'users: [{ name: alice, weight: 4 }]\n')
    symlinkSync('..2026_01_01_v2', join(dir, '..data_tmp'))
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'))

    const config = await until(() => reloaded.at(-1))
    expect(config.users[0]?.weight).toBe(4)
  })
})
