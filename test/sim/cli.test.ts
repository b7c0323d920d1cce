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

  it("starts with vLLM's own spelling of its flags, and stays quiet at info", async () => {
    const cli = fileURLToPath(new URL('../../src/cli.ts', import.meta.url))
    // A `vllm serve` command line, as an operator would paste it.
    const vllmFlags = [
      ...['--model', 'meta-llama/Llama-3.1-8B-Instruct', '--served-model-name', 'llama', 'llama-chat'],
      ...['--num-gpu-blocks-override', '300', '--max-model-len', '2048', '--max-num-batched-tokens', '4096'],
      ...['--gpu-memory-utilization', '0.8', '--no-enable-prefix-caching', '--block-size', '32'],
      ...['--max-num-seqs', '64', '--seed', '5', '--port', '0', '--host', '127.0.0.1'],
      ...['--enable-lora', '--lora-modules', 'sql-lora=/adapters/sql', '--kv-offloading-size', '1'],
      ...['--kv-offloading-backend', 'native'],
    ]
    const child = spawn(process.execPath, ['--import', 'tsx', cli, 'sim', ...vllmFlags, '--speed', '50'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const lines: string[] = []
    try {
      const url = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout! }).on('line', (line) => {
          lines.push(line)
          const entry = JSON.parse(line) as { url?: string }
          if (entry.url !== undefined) resolve(entry.url)
        })
        child.once('exit', (code) => reject(new Error(`exited with ${code} before listening`)))
      })
      const models = (await (await request(`${url}/v1/models`)).body.json()) as {
        data: Array<{ id: string; root: string; parent: string | null; max_model_len: number | null }>
      }
      expect(models.data.map((m) => [m.id, m.root, m.parent, m.max_model_len])).toEqual([
        ['llama', 'meta-llama/Llama-3.1-8B-Instruct', null, 2048],
        ['llama-chat', 'meta-llama/Llama-3.1-8B-Instruct', null, 2048],
        ['sql-lora', '/adapters/sql', 'llama', null],
      ])
      const completion = await request(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'llama-chat', prompt: 'hi', max_tokens: 2 }),
      })
      expect(((await completion.body.json()) as { model: string }).model).toBe('llama')
      const metrics = await (await request(`${url}/metrics`)).body.text()
      const info = /^vllm:cache_config_info\{([^}]*)\}/m.exec(metrics)?.[1] ?? ''
      for (const label of [
        'block_size="32"',
        'num_gpu_blocks="300"',
        'num_gpu_blocks_override="300"',
        'gpu_memory_utilization="0.8"',
        'enable_prefix_caching="False"',
        'kv_offloading_size="1.0"',
        'kv_offloading_backend="native"',
        // 1 GiB / (131,072 bytes per token × 32 tokens per block)
        'num_cpu_blocks="256"',
      ]) {
        expect(info).toContain(label)
      }
      // Start-up lines only: no line per request at the default level.
      expect(lines.map((line) => (JSON.parse(line) as { msg: string }).msg)).toEqual([
        expect.stringMatching(/^Server listening at/),
        'kvgate sim listening',
      ])
    } finally {
      child.kill('SIGKILL')
    }
  })
})
