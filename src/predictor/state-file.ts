import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Clock } from '../core/index.js'
import type { Predictor, PredictorSnapshot } from './predictor.js'

/**
 * The predictor's windows on disk (`predictor.stateFile`), so a restarted gateway predicts from what it had
 * learnt rather than from the cold start. JSON, written whole to a temporary file and renamed over the old
 * one, so a crash mid-write leaves the previous state rather than half a file.
 */
export function loadPredictorState(path: string): PredictorSnapshot | undefined {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    // No file yet is the first start; anything else is the operator's to see.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  const data = JSON.parse(text) as Partial<PredictorSnapshot>
  if (data.version !== 1 || typeof data.models !== 'object' || data.models === null) {
    throw new SyntaxError(`${path}: not a kvgate predictor state (version 1)`)
  }
  return data as PredictorSnapshot
}

export function savePredictorState(path: string, snapshot: PredictorSnapshot): void {
  mkdirSync(dirname(path), { recursive: true })
  const temporary = `${path}.${process.pid}.tmp`
  writeFileSync(temporary, `${JSON.stringify(snapshot)}\n`)
  renameSync(temporary, path)
}

export interface KeptPredictorState {
  /** Stop the periodic writes and write once more (shutdown). */
  stop(): void
}

/**
 * Seed `predictor` from `path` (if the file exists) and write its windows back every `intervalMs` on `clock`
 * and once at `stop()`. A file that cannot be read or written is reported (`onError`) and otherwise
 * ignored: a predictor that starts cold is safe, a gateway that refuses to start over it is not.
 */
export function keepPredictorState(options: {
  predictor: Predictor
  path: string
  clock: Clock
  intervalMs: number
  onError(error: unknown, during: 'load' | 'save'): void
}): KeptPredictorState {
  const { predictor, path, clock } = options
  try {
    const saved = loadPredictorState(path)
    if (saved !== undefined) predictor.restore(saved)
  } catch (error) {
    options.onError(error, 'load')
  }
  const save = (): void => {
    try {
      savePredictorState(path, predictor.snapshot())
    } catch (error) {
      options.onError(error, 'save')
    }
  }
  const timer = clock.setInterval(save, options.intervalMs)
  timer.unref?.()
  let stopped = false
  return {
    stop() {
      if (stopped) return
      stopped = true
      clock.clearInterval(timer)
      save()
    },
  }
}
