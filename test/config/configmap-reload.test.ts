import { mkdirSync, mkdtempSync, renameSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { ConfigWatcher } from '../../src/config/index.js'
import { until, watchConfig } from './support.js'

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
    const { reloaded, ...watched } = watchConfig(join(dir, 'kvgate.yaml'))
    watcher = watched.watcher

    // An update as the kubelet makes it: a new timestamped directory, then ..data_tmp renamed over ..data.
    mkdirSync(join(dir, '..2026_01_01_v2'))
    writeFileSync(join(dir, '..2026_01_01_v2', 'kvgate.yaml'), 'users: [{ name: alice, weight: 4 }]\n')
    symlinkSync('..2026_01_01_v2', join(dir, '..data_tmp'))
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'))

    const config = await until(() => reloaded.at(-1), 3000)
    expect(config.users[0]?.weight).toBe(4)
  })
})
