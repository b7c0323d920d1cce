import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { fixture, runBench } from './cli-harness.js'

const dir = mkdtempSync(join(tmpdir(), 'kvgate-compare-cli-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('kvgate bench compare (command line)', () => {
  it('says what the workload is once at the top of the HTML report', async () => {
    const report = join(dir, 'report.html')
    await runBench([
      'compare',
      '-i',
      fixture('burstgpt.csv'),
      '--policies',
      'fifo',
      '--speed',
      '20',
      '--report',
      report,
    ])
    const html = readFileSync(report, 'utf8')
    const top = html.slice(0, html.indexOf('<h2>'))
    expect(top).toMatch(/<p>Workload: [^<]*burstgpt\.csv \(burstgpt, \d+ requests, open loop\)<\/p>/)
    expect(top.match(/burstgpt\.csv/g)).toHaveLength(1)
  }, 60_000)
})
