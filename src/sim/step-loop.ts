import type { Clock, TimerHandle } from '../core/index.js'

/**
 * The engine's step loop on a planned timeline: each step starts where the previous one was due to end, not
 * where its timer happened to fire. Timers fire late (≥ 1 ms of real time, which is 100 emulated ms at speed
 * 100), so without this the emulator would run slower than its latency model, more so the faster the clock.
 * Steps that are already due run back to back in one callback, up to a bound that keeps sockets served; a
 * lag beyond `maxCatchUpMs` (the process is CPU-bound) is dropped rather than repaid in a burst.
 *
 * One timer per step, whatever the number of requests.
 */
export interface StepLoopOptions<T> {
  clock: Clock
  maxCatchUpMs: number
  /** Runs `fn` after the current turn of the event loop. */
  defer: (fn: () => void) => unknown
  /** Pick the next step's work; empty means idle until `wake()`. */
  schedule(): T[]
  /** The step that ran `work` is over: its tokens come out now. */
  complete(work: readonly T[]): void
  /** Emulated ms the step over `work` takes. */
  duration(work: readonly T[]): number
}

export interface StepLoop {
  /** Start the loop if it is idle; arrivals in the same turn of the event loop join the same first step. */
  wake(): void
  close(): void
}

// Request-steps (≈ tokens streamed) run back to back before yielding to I/O: enough to catch up many
// small steps at a high speed, few enough that /metrics and new connections are served within a few ms.
const MAX_TOKENS_PER_CALLBACK = 4096

export function createStepLoop<T>(options: StepLoopOptions<T>): StepLoop {
  const { clock, maxCatchUpMs } = options
  let inFlight: T[] = []
  let stepTimer: TimerHandle | null = null
  let plannedEndMs: number | null = null
  let running = false
  let wakePending = false
  let closed = false

  const onStepDue = (): void => {
    stepTimer = null
    let work = 0
    for (;;) {
      work += inFlight.length
      const done = inFlight
      inFlight = []
      options.complete(done)
      if (closed) return
      const previousEnd = plannedEndMs!
      inFlight = options.schedule()
      if (inFlight.length === 0) {
        // Idle, or the waiting head does not fit until a request leaves: the next arrival or abort wakes us.
        plannedEndMs = null
        running = false
        return
      }
      const now = clock.now()
      const start = now - previousEnd > maxCatchUpMs ? now : previousEnd
      plannedEndMs = start + options.duration(inFlight)
      if (plannedEndMs > now || work >= MAX_TOKENS_PER_CALLBACK) {
        stepTimer = clock.setTimeout(onStepDue, Math.max(0, plannedEndMs - now))
        return
      }
    }
  }

  const start = (): void => {
    wakePending = false
    if (closed || running) return
    inFlight = options.schedule()
    if (inFlight.length === 0) return
    running = true
    const now = clock.now()
    plannedEndMs = now + options.duration(inFlight)
    stepTimer = clock.setTimeout(onStepDue, plannedEndMs - now)
  }

  return {
    wake() {
      if (closed || running || wakePending) return
      wakePending = true
      options.defer(start)
    },
    close() {
      closed = true
      if (stepTimer !== null) clock.clearTimeout(stepTimer)
      stepTimer = null
    },
  }
}
