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
  const sizings = [
    options.kvOffloadingSize !== undefined && 'kvOffloadingSize',
    options.numCpuBlocks !== undefined && 'numCpuBlocks',
    options.kvTransferConfig !== undefined && 'kvTransferConfig',
  ].filter((name) => name !== false)
  if (sizings.length > 1) problems.push(`${source}: ${sizings.join(' and ')} all size the CPU tier; give one`)
  const extra = options.kvTransferConfig?.kv_connector_extra_config
  if (options.kvTransferConfig !== undefined && extra?.num_cpu_blocks === undefined && !extra?.cpu_bytes_to_use) {
    problems.push(
      `${source}: kvTransferConfig: the OffloadingConnector needs kv_connector_extra_config.num_cpu_blocks or cpu_bytes_to_use`,
    )
  }
  if ((options.kvOffloadingSize !== undefined || extra?.cpu_bytes_to_use !== undefined) && resolved.offload === null) {
    const bytes = resolved.kvBytesPerToken * resolved.blockSize
    problems.push(`${source}: the CPU tier's size holds no block of ${bytes} bytes (kvBytesPerToken × blockSize)`)
  }
  if (options.kvOffloadingBackend !== undefined && resolved.offload === null) {
    problems.push(`${source}: kvOffloadingBackend must be used together with kvOffloadingSize (or numCpuBlocks)`)
  }
  if (problems.length > 0) throw errors.invalidConfig([problems.join('; ')])
  return options
}
