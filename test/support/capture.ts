import { vi } from 'vitest'

export interface Captured {
  stdout: string
  stderr: string
  /** The `process.exitCode` the command set (undefined: none, a success). */
  exitCode: number | undefined
}

/**
 * Run a CLI command in this process with stdout and stderr captured and `process.exitCode` reset before and
 * restored after (a child process per call would cost seconds each).
 */
export async function captureOutput(run: () => Promise<unknown>): Promise<Captured> {
  let stdout = ''
  let stderr = ''
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    stdout += String(chunk)
    return true
  })
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    stderr += String(chunk)
    return true
  })
  const before = process.exitCode
  process.exitCode = undefined
  try {
    await run()
    return { stdout, stderr, exitCode: process.exitCode as number | undefined }
  } finally {
    out.mockRestore()
    err.mockRestore()
    process.exitCode = before
  }
}
