import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { createBenchCommand } from '../../src/bench/index.js'

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'kvgate-compare-cli-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('kvgate bench compare (command line)', () => {
  it('says what the workload is once at the top of the HTML report', async () => {
    const report = join(dir, 'report.html')
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true)
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    try {
      await createBenchCommand()
        .exitOverride()
        .parseAsync(
          ['compare', '-i', fixture('burstgpt.csv'), '--policies', 'fifo', '--speed', '20', '--report', report],
          { from: 'user' },
        )
    } finally {
      out.mockRestore()
      err.mockRestore()
    }
    const html = readFileSync(report, 'utf8')
    const top = html.slice(0, html.indexOf('<h2>'))
    expect(top).toMatch(/<p>Workload: [^<]*burstgpt\.csv \(burstgpt, \d+ requests, open loop\)<\/p>/)
    expect(top.match(/burstgpt\.csv/g)).toHaveLength(1)
  }, 60_000)
})
