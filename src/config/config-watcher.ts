import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'
import { toKvgateError, type KvgateError } from '../errors/index.js'
import type { ConfigOverrides } from './layers.js'
import { loadConfig } from './load-config.js'
import type { KvgateConfig } from './schema.js'

export interface ConfigWatcherOptions {
  path: string
  overrides?: ConfigOverrides
  env?: NodeJS.ProcessEnv
  /** A new, valid config was read. */
  onReload(config: KvgateConfig): void
  /** The file was changed but is invalid: the caller keeps the config it has. */
  onError(err: KvgateError): void
  /** Editors write a file in several steps; changes closer together than this are read once. */
  debounceMs?: number
}

export interface ConfigWatcher {
  /** Read the file now (SIGHUP). Returns the new config, or undefined when it was refused. */
  reload(): KvgateConfig | undefined
  close(): void
}

const DEFAULT_DEBOUNCE_MS = 100 // 100 ms: long enough to coalesce an editor's truncate-then-write

/**
 * Watches the config file and re-reads it on change. The directory is watched rather than the file because
 * editors and `kubectl` ConfigMap updates replace the file by renaming, which ends a watch on the file itself.
 */
export function createConfigWatcher(options: ConfigWatcherOptions): ConfigWatcher {
  const debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS
  const file = basename(options.path)
  let timer: NodeJS.Timeout | undefined
  let closed = false

  const reload = (): KvgateConfig | undefined => {
    try {
      const config = loadConfig(options.path, options.overrides ?? {}, options.env ?? process.env)
      options.onReload(config)
      return config
    } catch (err) {
      options.onError(toKvgateError(err))
      return undefined
    }
  }

  let watcher: FSWatcher | undefined
  try {
    watcher = watch(dirname(options.path), { persistent: false }, (_event, changed) => {
      // A ConfigMap volume never touches the file's own name: the kubelet swaps the `..data` symlink it points
      // through (`..data_tmp` renamed over `..data`), so those names count as a change of the file too.
      if (closed || (changed !== null && changed !== file && !changed.startsWith('..data'))) return
      clearTimeout(timer)
      timer = setTimeout(reload, debounceMs)
    })
    watcher.on('error', (err) => options.onError(toKvgateError(err)))
  } catch (err) {
    // Some filesystems cannot be watched; SIGHUP still reloads.
    options.onError(toKvgateError(err))
  }

  return {
    reload,
    close() {
      closed = true
      clearTimeout(timer)
      watcher?.close()
    },
  }
}
