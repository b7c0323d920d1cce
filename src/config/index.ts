export type {
  KvgateConfig,
  BackendConfig,
  UserConfig,
  IdentitySource,
  LogLevel,
  PolicyConfig,
  RoutingConfig,
  DeepReadonly,
} from './schema.js'
export { configSchema, DEFAULT_OUTPUT_HINT_HEADER } from './schema.js'
export type { ConfigOverrides } from './layers.js'
export { envOverrides, ENV_OVERRIDES, FLAG_OVERRIDES } from './layers.js'
export { loadConfig, parseConfig, toPolicyUser } from './load-config.js'
export type { ConfigWatcher, ConfigWatcherOptions } from './config-watcher.js'
export { createConfigWatcher } from './config-watcher.js'
