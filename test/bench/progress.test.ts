import { afterEach, describe, expect, it, vi } from 'vitest'
import type { RequestRecord } from '../../src/bench/index.js'
import { createProgress, formatDuration } from '../../src/bench/progress.js'

afterEach(() => {
  vi.useRealTimers()
})

describe('progress off a terminal', () => {
  it('prints a line every few seconds with elapsed time and ETA, and a last one at the end', () => {
    vi.useFakeTimers()
    let now = 1_000_000
    const lines: string[] = []
    const progress = createProgress('bench', {
      terminal: false,
      intervalMs: 5000,
      now: () => now,
      write: (l) => lines.push(l),
    })
    progress.onTotal(100)
    const done = (outcome: RequestRecord['outcome']) => progress.onRecord({ outcome } as RequestRecord)
    for (let i = 0; i < 20; i++) done(i < 2 ? 'rejected' : 'completed')
    done('failed')
    now += 30_000
    vi.advanceTimersByTime(5000)
    expect(lines).toEqual(['bench: 21/100 requests (21%), 429s 2, failed 1, 0:30 elapsed, ETA 1:53\n'])
    progress.stop()
    expect(lines).toHaveLength(2)
    vi.advanceTimersByTime(60_000)
    expect(lines).toHaveLength(2) // stopped: no more lines
  })

  it('formats durations as m:ss and h:mm:ss', () => {
    expect(formatDuration(65_000)).toBe('1:05')
    expect(formatDuration(3_723_000)).toBe('1:02:03')
    expect(formatDuration(Number.NaN)).toBe('?')
  })
})
