import { describe, expect, it } from 'vitest'
import { clockTimeoutSignal, createManualClock, createWatchdog } from '../../src/core/index.js'

describe('the clock-driven watchdog', () => {
  it('fires a period after the last activity, and only then', () => {
    const clock = createManualClock()
    let fired = 0
    const watchdog = createWatchdog(clock, 100, () => fired++)
    clock.advance(60)
    watchdog.touch()
    clock.advance(60) // 120 ms since the start, 60 since the touch
    expect(fired).toBe(0)
    clock.advance(39)
    expect(fired).toBe(0)
    clock.advance(1)
    expect(fired).toBe(1)
    expect(watchdog.fired).toBe(true)
    clock.advance(1_000)
    expect(fired).toBe(1)
    expect(clock.pendingTimers()).toBe(0)
  })

  it('arms one timer however often it is touched', () => {
    const clock = createManualClock()
    const watchdog = createWatchdog(clock, 100, () => {})
    for (let i = 0; i < 1_000; i++) watchdog.touch()
    expect(clock.pendingTimers()).toBe(1)
    watchdog.stop()
    expect(clock.pendingTimers()).toBe(0)
  })

  it('switches to a new period counted from the switch', () => {
    const clock = createManualClock()
    let fired = 0
    const watchdog = createWatchdog(clock, 1_000, () => fired++)
    clock.advance(900)
    watchdog.reset(50)
    clock.advance(49)
    expect(fired).toBe(0)
    clock.advance(1)
    expect(fired).toBe(1)
  })

  it('holds its countdown while paused, and counts a full period again from the resume', () => {
    const clock = createManualClock()
    let fired = 0
    const watchdog = createWatchdog(clock, 100, () => fired++)
    clock.advance(50)
    watchdog.pause()
    clock.advance(1_000)
    expect(fired).toBe(0)
    watchdog.resume()
    clock.advance(99)
    expect(fired).toBe(0)
    clock.advance(1)
    expect(fired).toBe(1)
  })

  it('gives an AbortSignal that aborts with the reason on the clock, not on real time', () => {
    const clock = createManualClock()
    const timeout = clockTimeoutSignal(clock, 200, () => new Error('too slow'))
    expect(timeout.signal.aborted).toBe(false)
    clock.advance(200)
    expect(timeout.signal.aborted).toBe(true)
    expect((timeout.signal.reason as Error).message).toBe('too slow')
    const cleared = clockTimeoutSignal(clock, 200, () => 'never')
    cleared.clear()
    clock.advance(1_000)
    expect(cleared.signal.aborted).toBe(false)
  })
})
