import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * A/B builds for the findings of docs/benchmarks.md: a copy of the compiled tree (`npm run bench:perf:build`)
 * with one suggested change applied to the compiled JavaScript, so that it can be measured side by side with
 * the shipped code without editing another engineer's source. Only the build cache is touched. Each returns
 * the copy's root, or undefined when running from sources under tsx (nothing compiled to copy).
 */
function copyBuild(suffix: string): { root: string; copy: string } | undefined {
  const here = fileURLToPath(import.meta.url)
  if (!here.endsWith('.js')) return undefined
  const root = join(dirname(here), '..', '..', '..') // <build>/bench/perf/lib → <build>
  const copy = `${root}-${suffix}`
  rmSync(copy, { recursive: true, force: true })
  cpSync(root, copy, { recursive: true })
  return { root, copy }
}

function patch(file: string, from: string, to: string): void {
  if (!existsSync(file)) throw new Error(`${file} missing: is the build complete?`)
  const text = readFileSync(file, 'utf8')
  if (!text.includes(from)) throw new Error(`${file} no longer contains the code this A/B patches: ${from}`)
  writeFileSync(file, text.replace(from, to))
}

/**
 * Finding 4 (a): `KvgateError` skips the stack trace for 429, 499 and 503, the errors admission answers with
 * as outcomes (`Error.stackTraceLimit = 0` around `super()`; statements before `super()` may not use `this`).
 */
export function prepareStacklessRejectionsBuild(): string | undefined {
  const build = copyBuild('stackless-rejections')
  if (build === undefined) return undefined
  patch(
    join(build.copy, 'src', 'errors', 'index.js'),
    'super(message, options.cause === undefined ? undefined : { cause: options.cause });',
    'const stackTraceLimit = Error.stackTraceLimit; if (statusCode === 429 || statusCode === 499 || statusCode === 503) Error.stackTraceLimit = 0; ' +
      'super(message, options.cause === undefined ? undefined : { cause: options.cause }); Error.stackTraceLimit = stackTraceLimit;',
  )
  return build.copy
}
