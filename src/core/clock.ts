/**
 * Time as a collaborator. Queue deadlines, quotas, the metrics poller and the emulator's engine take a `Clock`
 * so tests can drive them with a fake one instead of sleeping.
 */
export interface Clock {
  /** Milliseconds on a monotonic scale (not wall time); only differences are meaningful. */
  now(): number
  /** Wall-clock milliseconds since the epoch, for `created` fields and log timestamps. */
  wallNow(): number
  setTimeout(fn: () => void, ms: number): TimerHandle
  clearTimeout(handle: TimerHandle): void
  setInterval(fn: () => void, ms: number): TimerHandle
  clearInterval(handle: TimerHandle): void
}

/** Opaque timer handle; `unref()` lets a process exit while the timer is pending. */
export interface TimerHandle {
  unref?(): void
}

/** The real clock: `performance.now()` for intervals, `Date.now()` for wall time. */
export function createSystemClock(): Clock {
  return {
    now: () => performance.now(),
    wallNow: () => Date.now(),
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
    setInterval: (fn, ms) => setInterval(fn, ms),
    clearInterval: (handle) => clearInterval(handle as NodeJS.Timeout),
  }
}

/**
 * The real clock running `speed` times faster: `now()` advances `speed` ms per real ms and timers fire
 * after `ms / speed` real ms. The emulator's `--speed` and tests that compress a minute of quota use it,
 * so the gateway and the emulator can share one compressed timeline.
 */
export function createScaledClock(speed: number): Clock {
  if (!(speed > 0)) throw new RangeError(`clock speed must be > 0, got ${speed}`)
  const originMs = performance.now()
  const wallOriginMs = Date.now()
  const real = createSystemClock()
  return {
    now: () => originMs + (performance.now() - originMs) * speed,
    wallNow: () => wallOriginMs + (Date.now() - wallOriginMs) * speed,
    setTimeout: (fn, ms) => real.setTimeout(fn, ms / speed),
    clearTimeout: real.clearTimeout,
    setInterval: (fn, ms) => real.setInterval(fn, ms / speed),
    clearInterval: real.clearInterval,
  }
}

interface ManualTimer {
  id: number
  dueMs: number
  fn: () => void
  everyMs: number | undefined
}

/** A clock that only moves when a test calls `advance()`; timers fire in due order. */
export interface ManualClock extends Clock {
  advance(ms: number): void
  pendingTimers(): number
}

export function createManualClock(startMs = 0, wallStartMs = 1_730_000_000_000): ManualClock {
  let nowMs = startMs
  let nextId = 1
  const timers = new Map<number, ManualTimer>()

  const schedule = (fn: () => void, ms: number, everyMs: number | undefined): TimerHandle => {
    const id = nextId++
    timers.set(id, { id, dueMs: nowMs + Math.max(0, ms), fn, everyMs })
    return { id, unref() {} } as TimerHandle
  }
  const cancel = (handle: TimerHandle): void => {
    timers.delete((handle as { id: number }).id)
  }

  return {
    now: () => nowMs,
    wallNow: () => wallStartMs + (nowMs - startMs),
    setTimeout: (fn, ms) => schedule(fn, ms, undefined),
    clearTimeout: cancel,
    setInterval: (fn, ms) => schedule(fn, ms, Math.max(1, ms)),
    clearInterval: cancel,
    pendingTimers: () => timers.size,
    advance(ms: number) {
      const targetMs = nowMs + ms
      for (;;) {
        let next: ManualTimer | undefined
        for (const timer of timers.values()) {
          if (timer.dueMs <= targetMs && (next === undefined || timer.dueMs < next.dueMs)) next = timer
        }
        if (next === undefined) break
        nowMs = next.dueMs
        if (next.everyMs === undefined) timers.delete(next.id)
        else next.dueMs += next.everyMs
        next.fn()
      }
      nowMs = targetMs
    },
  }
}
