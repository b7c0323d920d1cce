import { fileURLToPath } from 'node:url'
import { vi } from 'vitest'
import { createBenchCommand } from '../../src/bench/index.js'

export const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))

/** Run `kvgate bench ARGS` in-process and return what it printed and the exit code it set. */
export async function runBench(
  args: string[],
): Promise<{ stdout: string; stderr: string; exitCode: number | undefined }> {
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
    await createBenchCommand().exitOverride().parseAsync(args, { from: 'user' })
    return { stdout, stderr, exitCode: process.exitCode as number | undefined }
  } finally {
    out.mockRestore()
    err.mockRestore()
    process.exitCode = before
  }
}
