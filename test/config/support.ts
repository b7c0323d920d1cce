import { createConfigWatcher, type ConfigWatcher, type KvgateConfig } from '../../src/config/index.js'
import type { KvgateError } from '../../src/errors/index.js'

/** Polls `probe` until it returns a value (a watcher reloads on its own schedule; no sleeps as sync). */
export async function until<T>(probe: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

export interface WatchedConfig {
  watcher: ConfigWatcher
  /** Every config the watcher reloaded, in order. */
  reloaded: KvgateConfig[]
  /** Every reload it refused, in order. */
  refused: KvgateError[]
}

/** A short-debounce watcher on `path` (no env overrides) that records what it reloads and refuses; close it. */
export function watchConfig(path: string): WatchedConfig {
  const reloaded: KvgateConfig[] = []
  const refused: KvgateError[] = []
  const watcher = createConfigWatcher({
    path,
    env: {},
    debounceMs: 20,
    onReload: (config) => reloaded.push(config),
    onError: (err) => refused.push(err),
  })
  return { watcher, reloaded, refused }
}
