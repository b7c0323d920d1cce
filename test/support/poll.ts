import type { ManualClock } from '../../src/core/index.js'

/**
 * The one poll-until of the tests: wait for an event that has no callback to hook (a server's state, a file
 * watcher, a child process), never a fixed sleep. Every helper that used to poll on its own (the gateway's,
 * the config watcher's, the emulator's, the deploy checks') is this one.
 */
export interface UntilOptions {
  /** Give up after this long (real ms; what is awaited is I/O, not the test's clock). */
  timeoutMs?: number
  intervalMs?: number
  /** Named in the timeout's message. */
  what?: string
  /** A probe that throws is tried again (a server not yet listening) instead of failing at once. */
  tolerateErrors?: boolean
}

/** Poll `probe` until it returns something other than undefined; a number is the timeout in ms. */
export async function until<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  options: number | UntilOptions = {},
): Promise<T> {
  const {
    timeoutMs = 10_000,
    intervalMs = 10,
    what = 'condition',
    tolerateErrors = false,
  } = typeof options === 'number' ? { timeoutMs: options } : options
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      const value = await probe()
      if (value !== undefined) return value
    } catch (err) {
      if (!tolerateErrors) throw err
      lastError = err
    }
    if (Date.now() > deadline) {
      const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : ''
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`)
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

/**
 * Run a manual clock forward in `stepMs` steps, letting I/O through between steps, until `done()`: the
 * servers under test then see only the clock's time, however slow the machine is. Fails after `maxSteps`.
 */
export async function drive(
  clock: ManualClock,
  done: () => boolean | Promise<boolean>,
  { stepMs = 10, maxSteps = 100_000 }: { stepMs?: number; maxSteps?: number } = {},
): Promise<void> {
  for (let step = 0; !(await done()); step++) {
    if (step >= maxSteps) throw new Error(`not done after ${maxSteps} steps of ${stepMs} ms on the clock`)
    clock.advance(stepMs)
    await new Promise((resolve) => setImmediate(resolve))
  }
}
