import { type Static, Type } from 'typebox'
import { adminSection } from './sections/admin.js'
import { admissionSection } from './sections/admission.js'
import { backendsSection } from './sections/backends.js'
import { forwardingSection } from './sections/forwarding.js'
import { healthCheckSection } from './sections/health-check.js'
import { type IDENTITY_SOURCES, identityRules, identitySection } from './sections/identity.js'
import { limitsSection } from './sections/limits.js'
import { metricsPollSection } from './sections/metrics-poll.js'
import { modelsSection } from './sections/models.js'
import { passthroughSection } from './sections/passthrough.js'
import { policySection } from './sections/policy.js'
import { predictorSection } from './sections/predictor.js'
import { routingSection } from './sections/routing.js'
import { serverSection } from './sections/server.js'
import { stateSection } from './sections/state.js'
import type { LOG_LEVELS } from './sections/telemetry.js'
import { telemetrySection } from './sections/telemetry.js'
import { tracingSection } from './sections/tracing.js'
import { defaultUserSection, usersSection } from './sections/users.js'

/**
 * The one schema of kvgate's YAML, built with TypeBox so the TypeScript type below is derived from it, not
 * kept beside it. Each section lives in `sections/<name>.ts` with its defaults (named constants with their
 * units) and its own cross-field rules (`crossField`); `additionalProperties: false` everywhere, so a typo
 * such as `intervalMS` is an error naming the field instead of a silently ignored setting.
 *
 * Adding a section: write `sections/<name>.ts` exporting `<name>Section` (a `Type.Object` with
 * `additionalProperties: false` and `default: {}`, every field with a `default` unless it is required), add it
 * below, document it in docs/configuration.md and config/kvgate.yaml, and give it a test in
 * test/config/config-validation.test.ts. The type, the defaults and the error messages follow from the schema.
 */
export const configSchema = Type.Object(
  {
    server: serverSection,
    admin: adminSection,
    limits: limitsSection,
    /** Empty: the gateway starts the built-in emulator in-process. */
    backends: backendsSection,
    metricsPoll: metricsPollSection,
    healthCheck: healthCheckSection,
    passthrough: passthroughSection,
    forwarding: forwardingSection,
    admission: admissionSection,
    predictor: predictorSection,
    identity: identitySection,
    users: usersSection,
    defaultUser: defaultUserSection,
    policy: policySection,
    /** Model pools: which backend serves which model, the default model, the context-length check. */
    models: modelsSection,
    /** Which backend of a model's pool a request goes to. */
    routing: routingSection,
    telemetry: telemetrySection,
    /** Where reservations, quota windows and fairness counters live: this process, or Redis for replicas. */
    state: stateSection,
    tracing: tracingSection,
  },
  // Rules that relate two sections; a section's own rules sit on the section.
  { additionalProperties: false, crossField: [...identityRules] },
)

/** Readonly all the way down: the config is deep-frozen once validated. */
export type DeepReadonly<T> = T extends readonly (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T

/** What the schema accepts, defaults filled. */
type ValidatedConfig = Static<typeof configSchema>

/** A backend; `name` is optional in YAML and always set once parsed (`vllm-<index>`). */
export type BackendConfig = DeepReadonly<ValidatedConfig['backends'][number] & { name: string }>
export type UserConfig = DeepReadonly<ValidatedConfig['users'][number]>

/** The validated, deep-frozen config every module receives. */
export type KvgateConfig = DeepReadonly<Omit<ValidatedConfig, 'backends'> & { backends: BackendConfig[] }>

export type IdentitySource = (typeof IDENTITY_SOURCES)[number]
export type LogLevel = (typeof LOG_LEVELS)[number]

export * from './sections/admin.js'
export * from './sections/admission.js'
export * from './sections/forwarding.js'
export * from './sections/health-check.js'
export { DEFAULT_ANONYMOUS_USER, DEFAULT_IDENTITY_HEADER, IDENTITY_SOURCES } from './sections/identity.js'
export * from './sections/limits.js'
export * from './sections/metrics-poll.js'
export { DEFAULT_POLICY, type PolicyConfig } from './sections/policy.js'
export * from './sections/models.js'
export * from './sections/predictor.js'
export { DEFAULT_ROUTING, type RoutingConfig } from './sections/routing.js'
export * from './sections/server.js'
export * from './sections/state.js'
export { DEFAULT_LOG_LEVEL, DEFAULT_MAX_USER_LABELS, LOG_LEVELS } from './sections/telemetry.js'
export * from './sections/tracing.js'
