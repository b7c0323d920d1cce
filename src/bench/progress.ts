import cliProgress from 'cli-progress'
import type { RequestRecord } from './runner.js'

/**
 * Progress of a run on stderr, with elapsed time and an ETA: a bar when stderr is a terminal, else one line
 * every few seconds (CI logs, `| tee`), so a long replay never looks hung. Wall-clock time: it reports how
 * long the person waits, whatever `--speed` does to the figures.
 */
export interface Progress {
  onTotal(n: number): void
  onRecord(r: RequestRecord): void
  stop(): void
}

/** 5 s between two progress lines when stderr is not a terminal. */
export const PROGRESS_LINE_INTERVAL_MS = 5_000

export interface ProgressOptions {
  /** Where lines go; stderr by default. */
  write?: (line: string) => void
  /** Draw a bar (a terminal) or print lines; stderr's `isTTY` by default. */
  terminal?: boolean
  intervalMs?: number
  /** Wall clock in ms (`Date.now` by default), for tests. */
  now?: () => number
}

/** `1:05`, `1:02:03`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?'
  const total = Math.round(ms / 1000)
  const h = Math.floor(total / 3600)
  const m = Math.floor((total % 3600) / 60)
  const s = String(total % 60).padStart(2, '0')
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`
}

export function createProgress(label: string, options: ProgressOptions = {}): Progress {
  const terminal = options.terminal ?? process.stderr.isTTY === true
  const write = options.write ?? ((line: string) => void process.stderr.write(line))
  const now = options.now ?? Date.now
  let rejected = 0
  let failed = 0
  let done = 0
  let total: number | undefined
  let startedAt: number | undefined
  const count = (r: RequestRecord): void => {
    done++
    if (r.outcome === 'rejected') rejected++
    if (r.outcome === 'failed') failed++
  }
  if (terminal) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {value}/{total} requests | 429s {rejected} | failed {failed} | {duration_formatted} elapsed, ETA {eta_formatted}`,
        stream: process.stderr,
        hideCursor: true,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    )
    let started = false
    return {
      onTotal(n) {
        bar.start(n, 0, { rejected, failed })
        started = true
      },
      onRecord(r) {
        count(r)
        if (started) bar.increment(1, { rejected, failed })
      },
      stop() {
        if (started) bar.stop()
      },
    }
  }
  const line = (): string => {
    const elapsed = startedAt !== undefined ? now() - startedAt : 0
    const share = total !== undefined && total > 0 ? done / total : undefined
    const eta = share !== undefined && done > 0 ? (elapsed / done) * ((total as number) - done) : Number.NaN
    const of = total !== undefined ? `/${total} requests (${Math.round((share ?? 0) * 100)}%)` : ' requests'
    return `${label.trim()}: ${done}${of}, 429s ${rejected}, failed ${failed}, ${formatDuration(elapsed)} elapsed, ETA ${formatDuration(eta)}\n`
  }
  let timer: ReturnType<typeof setInterval> | undefined
  return {
    onTotal(n) {
      total = n
      startedAt ??= now()
      timer ??= setInterval(() => write(line()), options.intervalMs ?? PROGRESS_LINE_INTERVAL_MS)
      // A run must be able to end (and the process to exit) whatever the progress timer is doing.
      timer.unref()
    },
    onRecord(r) {
      startedAt ??= now()
      count(r)
    },
    stop() {
      if (timer !== undefined) {
        clearInterval(timer)
        timer = undefined
        write(line())
      }
    },
  }
}
