import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { describe, expect, it } from 'vitest'

/** `kvgate sim` as a process: it serves, and `--die-after-ms` makes it exit with status 1 (the process dying). */
describe('kvgate sim command', () => {
  it('serves the flags it is given and dies on --die-after-ms', async () => {
    const cli = fileURLToPath(new URL('../../src/cli.ts', import.meta.url))
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        cli,
        'sim',
        '--port',
        '0',
        '--num-gpu-blocks',
        '256',
        '--model',
        'cli-model',
        '--die-after-ms',
        '4000',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    try {
      // The first log line says where it listens.
      const url = await new Promise<string>((resolve, reject) => {
        const lines = createInterface({ input: child.stdout! })
        lines.on('line', (line) => {
          const entry = JSON.parse(line) as { url?: string }
          if (entry.url !== undefined) resolve(entry.url)
        })
        child.once('exit', (code) => reject(new Error(`exited with ${code} before listening`)))
      })
      const models = (await (await request(`${url}/v1/models`)).body.json()) as {
        data: Array<{ id: string; max_model_len: number }>
      }
      expect(models.data[0]).toMatchObject({ id: 'cli-model', max_model_len: 255 * 16 })
      const metrics = await (await request(`${url}/metrics`)).body.text()
      expect(metrics).toMatch(/vllm:cache_config_info\{[^}]*num_gpu_blocks="256"/)
      expect(await exited).toBe(1)
    } finally {
      child.kill('SIGKILL')
    }
  })

  it('refuses a bad flag with exit status 2 and the reason', async () => {
    const cli = fileURLToPath(new URL('../../src/cli.ts', import.meta.url))
    const child = spawn(process.execPath, ['--import', 'tsx', cli, 'sim', '--speed', '0'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
    expect(code).toBe(2)
    expect(stderr).toContain('speed: must be > 0')
  })
})
