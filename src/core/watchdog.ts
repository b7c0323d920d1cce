import type { Clock, TimerHandle } from './clock.js'

/**
 * A timeout on the injected clock that activity keeps from firing: the gateway's forwarding limits (no
 * headers within `headersTimeoutMs`, no body data for `idleTimeoutMs`), a poll's and a tokenize call's
 * timeout. undici's own `headersTimeout`/`bodyTimeout` and `AbortSignal.timeout` run on the real clock, so
 * a test on a stepped clock could not drive them and a loaded machine would fire them at random; these fire
 * only when the clock says so.
 *
 * `touch()` is O(1) and arms no timer: the one pending timer, when it fires, looks at the last activity and
 * sleeps again for what is left. A stream of 1,000 chunks costs one timer per idle period, not 1,000.
 */
export interface Watchdog {
  /** Activity: the countdown starts again from the current period. */
  touch(): void
  /** A new period (e.g. from "headers due" to "idle between chunks"), counted from now. */
  reset(periodMs: number): void
  /** Hold the countdown while the silence is not the watched side's doing (its reader is waiting on another). */
  pause(): void
  /** Count again, from now. */
  resume(): void
  /** Never fire. */
  stop(): void
  readonly fired: boolean
}

export function createWatchdog(clock: Clock, periodMs: number, onExpire: () => void): Watchdog {
  let period = periodMs
  let lastActivityMs = clock.now()
  let timer: TimerHandle | undefined
  let fired = false
  let stopped = false
  let paused = false

  const arm = (inMs: number): void => {
    timer = clock.setTimeout(check, Math.max(0, inMs))
    timer.unref?.()
  }
  const check = (): void => {
    timer = undefined
    if (stopped) return
    if (paused) {
      arm(period)
      return
    }
    const idleMs = clock.now() - lastActivityMs
    if (idleMs < period) {
      arm(period - idleMs)
      return
    }
    fired = true
    stopped = true
    onExpire()
  }
  arm(period)

  return {
    touch() {
      lastActivityMs = clock.now()
    },
    pause() {
      paused = true
    },
    resume() {
      paused = false
      lastActivityMs = clock.now()
    },
    reset(nextPeriodMs) {
      if (stopped) return
      period = nextPeriodMs
      lastActivityMs = clock.now()
      if (timer !== undefined) clock.clearTimeout(timer)
      arm(period)
    },
    stop() {
      stopped = true
      if (timer !== undefined) clock.clearTimeout(timer)
      timer = undefined
    },
    get fired() {
      return fired
    },
  }
}

/**
 * An AbortSignal that aborts with `reason()` after `timeoutMs` on `clock` (a clock-driven
 * `AbortSignal.timeout`); call `clear()` once the guarded work is done so the timer does not linger.
 */
export function clockTimeoutSignal(
  clock: Clock,
  timeoutMs: number,
  reason: () => unknown,
): { readonly signal: AbortSignal; clear(): void } {
  const controller = new AbortController()
  const watchdog = createWatchdog(clock, timeoutMs, () => controller.abort(reason()))
  return { signal: controller.signal, clear: () => watchdog.stop() }
}
