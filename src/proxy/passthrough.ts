import httpProxy from '@fastify/http-proxy'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { KvgateConfig } from '../config/index.js'
import { errors } from '../errors/index.js'
import { API_KEY_HEADERS } from '../identity/index.js'

export interface PassthroughOptions {
  /** Base URL of a usable backend for a request that skips admission, or undefined when none is usable. */
  pickUpstream(): string | undefined
  current(): { readonly config: KvgateConfig }
}

const KEEP_ALIVE_MS = 60_000 // 60 seconds

/**
 * The rest of vLLM's API (`/v1/models`, `/tokenize`, `/detokenize`, `/version`, `/v1/embeddings`, …) goes
 * straight to a usable backend. These calls hold no KV worth admitting (embeddings are short-lived), so they
 * skip the queue; kvgate's own routes and the admitted completions routes are static and win over this
 * catch-all in Fastify's router.
 */
export async function registerPassthrough(app: FastifyInstance, options: PassthroughOptions): Promise<void> {
  // The backend chosen in preHandler, so the request goes where the availability check looked.
  const chosen = new WeakMap<FastifyRequest, string>()
  await app.register(httpProxy, {
    upstream: '',
    prefix: '/',
    undici: { keepAliveTimeout: KEEP_ALIVE_MS },
    // reply-from would log two lines per proxied call at info; pass-through is not what the logs are for.
    disableRequestLogging: true,
    preHandler(request, reply, done) {
      const upstream = options.pickUpstream()
      if (upstream === undefined) {
        const error = errors.noBackendAvailable(['no backend is usable (metrics stale or failing)'])
        void reply.code(error.statusCode).send(error.toBody())
        return
      }
      chosen.set(request, upstream)
      done()
    },
    replyOptions: {
      getUpstream: (request) => chosen.get(request as FastifyRequest) ?? options.pickUpstream() ?? '',
      rewriteRequestHeaders(_request, headers) {
        const { identity } = options.current().config
        const out = { ...headers }
        delete out[identity.header]
        if (!identity.forwardApiKey) for (const name of API_KEY_HEADERS) delete out[name]
        return out
      },
      onError(reply, { error }) {
        const failure = errors.upstreamError([error.message], { cause: error })
        void reply.code(failure.statusCode).send(failure.toBody())
      },
    },
  })
}
