import { Type } from 'typebox'

export const DEFAULT_TRACING_ENDPOINT = 'http://127.0.0.1:4318/v1/traces' // an OpenTelemetry Collector's OTLP/HTTP port
export const DEFAULT_TRACING_SERVICE_NAME = 'kvgate'
export const DEFAULT_TRACING_SAMPLE_RATIO = 1 // share of new traces kept; a sampled parent is always followed
export const DEFAULT_TRACING_EXPORT_TIMEOUT_MS = 10_000 // one OTLP export request

/**
 * OpenTelemetry traces, off by default: one span per generating request with a child for its wait in the
 * admission queue and one for the upstream call, exported over OTLP/HTTP (JSON) to `endpoint`. An incoming
 * `traceparent` is honoured (the request's span is its child) and the upstream call carries kvgate's own.
 */
export const tracingSection = Type.Object(
  {
    enabled: Type.Boolean({ default: false }),
    /** The full OTLP/HTTP traces URL, path included (a Collector listens on `:4318/v1/traces`). */
    endpoint: Type.String({ pattern: '^https?://', default: DEFAULT_TRACING_ENDPOINT }),
    serviceName: Type.String({ minLength: 1, default: DEFAULT_TRACING_SERVICE_NAME }),
    /** Applies to traces kvgate starts; a request whose `traceparent` says sampled (or not) keeps that decision. */
    sampleRatio: Type.Number({ minimum: 0, maximum: 1, default: DEFAULT_TRACING_SAMPLE_RATIO }),
    /** Headers on every export request (a vendor's API key): secrets, never printed. */
    headers: Type.Record(Type.String({ minLength: 1 }), Type.String({ secret: true }), { default: {} }),
    exportTimeoutMs: Type.Integer({ minimum: 1, default: DEFAULT_TRACING_EXPORT_TIMEOUT_MS }),
  },
  { additionalProperties: false, default: {} },
)
