import { createConfigWatcher, type ConfigWatcher, type KvgateConfig } from '../../src/config/index.js'
import type { KvgateError } from '../../src/errors/index.js'

// A watcher reloads on its own schedule: poll for what it did (no sleeps as sync).
export { until } from '../support/poll.js'

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
