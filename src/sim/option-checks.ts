import { errors } from '../errors/index.js'
import { checkModelSpec } from './models.js'
import { resolveSimOptions, type SimOptions } from './options.js'

/**
 * Checks that span several options, after the schema has checked each one: what cannot be served is
 * refused at start with every reason, instead of surprising later.
 */
export function checkSimOptionCombinations(options: SimOptions, source = 'sim options'): SimOptions {
  const resolved = resolveSimOptions(options)
  const problems = checkModelSpec(resolved, source)
  if (options.kvOffloadingSize !== undefined && options.numCpuBlocks !== undefined) {
    problems.push(`${source}: kvOffloadingSize and numCpuBlocks both size the CPU tier; give one`)
  }
  if (options.kvOffloadingSize !== undefined && resolved.offload === null) {
    const bytes = resolved.kvBytesPerToken * resolved.blockSize
    problems.push(
      `${source}: kvOffloadingSize: ${options.kvOffloadingSize} GiB holds no block of ${bytes} bytes (kvBytesPerToken × blockSize)`,
    )
  }
  if (options.kvOffloadingBackend !== undefined && resolved.offload === null) {
    problems.push(`${source}: kvOffloadingBackend must be used together with kvOffloadingSize (or numCpuBlocks)`)
  }
  if (problems.length > 0) throw errors.invalidConfig([problems.join('; ')])
  return options
}
