import { startSim, type SimOptions } from '../../../src/sim/index.js'
import { serveUntilDisconnected } from './processes.js'

/**
 * The emulator in its own process (see `forkServer`); argv[2] is its options as JSON, plus `count`: how many
 * emulators to run side by side (the polling benchmark's 16 backends; kvgate refuses one URL twice).
 */
const { count = 1, ...options } = JSON.parse(process.argv[2] ?? '{}') as SimOptions & { count?: number }
serveUntilDisconnected(async () => {
  const sims = await Promise.all(
    Array.from({ length: count }, () => startSim({ ...options, port: 0, host: '127.0.0.1', logger: false })),
  )
  return {
    urls: sims.map((sim) => sim.url),
    close: async () => {
      await Promise.all(sims.map((sim) => sim.close()))
    },
  }
})
