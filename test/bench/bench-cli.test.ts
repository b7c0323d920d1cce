import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { SimHandle } from '../../src/sim/index.js'
import { startSim } from '../../src/sim/index.js'
import { fixture, runBench } from './cli-harness.js'

const dir = mkdtempSync(join(tmpdir(), 'kvgate-bench-cli-'))
const SPEED = 20

let sim: SimHandle
beforeAll(async () => {
  sim = await startSim({ speed: SPEED, logger: false })
})
afterAll(async () => {
  await sim.close()
  rmSync(dir, { recursive: true, force: true })
})

const bench = runBench

describe('kvgate bench (command line)', () => {
  it("replays a trace and prints vLLM's summary table, writing JSON and CSV", async () => {
    const json = join(dir, 'run.json')
    const csv = join(dir, 'run.csv')
    const { stdout, exitCode } = await bench([
      '-i',
      fixture('conversation.txt'),
      '-u',
      sim.url,
      '--speed',
      String(SPEED),
      '--output-json',
      json,
      '--output-csv',
      csv,
      '--slo',
      'ttft:600000',
    ])
    expect(exitCode).toBeUndefined()
    expect(stdout).toContain('Statistics summary:')
    expect(stdout).toMatch(/runtime_sec = \d+\.\d{3}/)
    for (const row of [
      'ttft_ms',
      'tpot_ms',
      'latency_ms',
      'input_num_turns',
      'input_num_tokens',
      'output_num_tokens',
      'output_num_chunks',
    ]) {
      expect(stdout).toMatch(new RegExp(`^${row}\\s+7\\.0\\s`, 'm'))
    }
    expect(stdout).toMatch(/^\s+count\s+mean\s+std\s+min\s+25%\s+50%\s+75%\s+90%\s+max$/m)
    expect(stdout).toContain('goodput_ratio = 1.0000')
    const exported = JSON.parse(readFileSync(json, 'utf8')) as {
      summary: { requests: number; table: Record<string, Record<string, number>> }
      users: { user: string }[]
      requests: { outcome: string }[]
    }
    expect(exported.summary.requests).toBe(7)
    expect(exported.summary.table['output_num_tokens']?.['mean']).toBeCloseTo((12 + 10 + 8 + 16 + 6 + 10 + 12) / 7, 6)
    expect(exported.users.map((u) => u.user)).toEqual(['1', '2', '3'])
    expect(exported.requests.every((r) => r.outcome === 'completed')).toBe(true)
    const lines = readFileSync(csv, 'utf8').trim().split('\n')
    expect(lines).toHaveLength(8)
    expect(lines[0]).toMatch(/^index,user,conversation_id,round,/)
  })

  it('runs vLLM conversation JSON closed-loop with --num-clients, history growing with the answers', async () => {
    const json = join(dir, 'conv.json')
    const { exitCode } = await bench([
      '-i',
      fixture('generate_multi_turn.json'),
      '-u',
      sim.url,
      '--speed',
      String(SPEED),
      '--num-clients',
      '2',
      '--max-active-conversations',
      '4',
      '--output-json',
      json,
    ])
    expect(exitCode).toBeUndefined()
    const out = JSON.parse(readFileSync(json, 'utf8')) as {
      mode: string
      requests: {
        conversationId: string
        round: number
        inputNumTurns: number
        inputNumTokens: number
        requestedOutputTokens: number
        outcome: string
      }[]
    }
    expect(out.mode).toBe('closed-loop')
    expect(out.requests.length).toBeGreaterThanOrEqual(4 * 2) // 4 conversations of 2 or 3 user turns
    const byConversation = new Map<string, typeof out.requests>()
    for (const r of out.requests)
      byConversation.set(r.conversationId, [...(byConversation.get(r.conversationId) ?? []), r])
    for (const turns of byConversation.values()) {
      turns.sort((a, b) => a.round - b.round)
      turns.forEach((t, k) => {
        expect(t.inputNumTurns).toBe(2 * k + 1)
      })
      // Each turn's prompt holds the previous prompt plus the answer actually received.
      for (let k = 1; k < turns.length; k++) {
        const prev = turns[k - 1] as (typeof turns)[number]
        expect((turns[k] as (typeof turns)[number]).inputNumTokens).toBeGreaterThan(
          prev.inputNumTokens + prev.requestedOutputTokens,
        )
      }
    }
  })

  it('runs ShareGPT conversations, dropping (and reporting) items without a user/assistant pair', async () => {
    const { stdout, exitCode } = await bench([
      '-i',
      fixture('sharegpt.json'),
      '-u',
      sim.url,
      '--speed',
      String(SPEED),
      '--num-clients',
      '1',
    ])
    expect(exitCode).toBeUndefined()
    expect(stdout).toMatch(/requests = 3 {2}completed = 3/)
    expect(stdout).toContain('malformed rows skipped = 1')
  })

  it('stops with the line of a malformed row, or skips it with --skip-malformed', async () => {
    const bad = join(dir, 'bad.csv')
    const { writeFileSync } = await import('node:fs')
    writeFileSync(
      bad,
      'Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n0,ChatGPT,20,5,25,API log\n0.1,ChatGPT,x,5,5,API log\n',
    )
    const failed = await bench(['-i', bad, '-u', sim.url, '--speed', String(SPEED)])
    expect(failed.exitCode).toBe(1)
    expect(failed.stderr).toContain(`Invalid trace ${bad}, line 3: Request tokens is not a number: "x"`)
    const skipped = await bench(['-i', bad, '-u', sim.url, '--speed', String(SPEED), '--skip-malformed'])
    expect(skipped.exitCode).toBeUndefined()
    expect(skipped.stdout).toContain('malformed rows skipped = 1')
    expect(skipped.stdout).toMatch(/requests = 1 {2}completed = 1/)
  })

  it('analyze prints rate, users, conversations and prefix sharing for block sizes 8/16/32', async () => {
    const { stdout, exitCode } = await bench(['analyze', fixture('conversation.txt')])
    expect(exitCode).toBeUndefined()
    expect(stdout).toContain('format = conversation  requests = 7')
    expect(stdout).toContain('users = 3')
    expect(stdout).toContain('conversations = 3')
    expect(stdout).toMatch(/^conversation_rounds\s+3\s+2\.33/m)
    expect(stdout).toMatch(/^block_size\s+sharing_mean/m)
    expect(stdout).toMatch(/^8\s+\S+%/m)
    expect(stdout).toMatch(/^32\s+\S+%/m)
  })
})
