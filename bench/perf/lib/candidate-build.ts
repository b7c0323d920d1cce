import { cpSync, existsSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * An A/B build for finding 2 of docs/benchmarks.md: a copy of the compiled tree (`npm run bench:perf:build`)
 * in which `src/proxy/sse-relay.js` re-exports the candidate relay, so kvgate can be measured end to end with
 * it, side by side with the shipped one, without editing src/proxy. Only the build cache is touched.
 * Returns the copy's root, or undefined when running from sources under tsx (nothing compiled to copy).
 */
export function prepareCandidateRelayBuild(): string | undefined {
  const here = fileURLToPath(import.meta.url)
  if (!here.endsWith('.js')) return undefined
  const root = join(dirname(here), '..', '..', '..') // <build>/bench/perf/lib → <build>
  const copy = `${root}-candidate-relay`
  rmSync(copy, { recursive: true, force: true })
  cpSync(root, copy, { recursive: true })
  const relay = join(copy, 'src', 'proxy', 'sse-relay.js')
  if (!existsSync(relay)) throw new Error(`${relay} missing: is the build complete?`)
  writeFileSync(relay, "export { createCandidateSseRelay as createSseRelay } from '../../bench/perf/lib/sse-relay-candidate.js'\n")
  return copy
}
