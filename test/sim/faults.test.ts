import { request } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { createManualClock } from '../../src/core/index.js'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { postJson, scrape, stream, waitFor } from './support.js'

/** Fault injection for reliability tests, at start and at run time. */
describe('fault injection', () => {
  let sim: SimHandle | undefined
  afterEach(async () => {
    await sim?.close()
    sim = undefined
  })

  it('errorRate 1 answers every generation with a 500 in vLLM shape', async () => {
    sim = await startSim({ speed: 100, faults: { errorRate: 1 } })
    const { status, json } = await postJson(`${sim.url}/v1/completions`, { prompt: 'hi', stream: true })
    expect(status).toBe(500)
    expect(json.error).toMatchObject({ type: 'InternalServerError', code: 500, param: null })
    expect(sim.engineState().running + sim.engineState().waiting).toBe(0)
  })

  it('streamCutRate 1 drops the connection mid-stream, without [DONE], and frees the blocks', async () => {
    sim = await startSim({ speed: 100, faults: { streamCutRate: 1 } })
    const res = await request(`${sim.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'hi', max_tokens: 20, ignore_eos: true, stream: true }),
    })
    expect(res.statusCode).toBe(200)
    let text = ''
    await expect(
      (async () => {
        for await (const chunk of res.body) text += chunk.toString()
      })(),
    ).rejects.toThrow()
    expect(text).not.toContain('[DONE]')
    expect(text.split('data: ').length - 1).toBe(10)
    await waitFor(
      () => sim!.engineState().usedBlocks === 0 && sim!.engineState().running === 0,
      5_000,
      'blocks to be freed',
    )
  })

  it("streamErrorRate 1 ends streams mid-way with vLLM's error event and [DONE] on the 200", async () => {
    sim = await startSim({ speed: 100, faults: { streamErrorRate: 1 } })
    const result = await stream(`${sim.url}/v1/chat/completions`, {
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 20,
      ignore_eos: true,
      stream: true,
    })
    expect(result.status).toBe(200)
    expect(result.done).toBe(true)
    const last = result.events.at(-1)!
    expect(last).toEqual({
      error: { message: expect.any(String), type: 'InternalServerError', param: null, code: 500 },
    })
    const contentChunks = result.events.filter(
      (e) => (e['choices'] as Array<{ delta: { content?: string } }> | undefined)?.[0]?.delta.content,
    )
    expect(contentChunks).toHaveLength(10)
    await waitFor(() => sim!.engineState().usedBlocks === 0, 5_000, 'blocks to be freed')
  })

  it('engineDead makes /health 503 and generation 500 until cleared', async () => {
    sim = await startSim({ speed: 100 })
    sim.setFaults({ engineDead: true })
    expect((await request(`${sim.url}/health`)).statusCode).toBe(503)
    expect((await postJson(`${sim.url}/v1/completions`, { prompt: 'hi' })).status).toBe(500)
    sim.setFaults({ engineDead: false })
    expect((await request(`${sim.url}/health`)).statusCode).toBe(200)
    expect((await postJson(`${sim.url}/v1/completions`, { prompt: 'hi' })).status).toBe(200)
  })

  it('switches /metrics to 500 and back at run time through POST /sim/faults', async () => {
    sim = await startSim({ speed: 100 })
    const on = await postJson(`${sim.url}/sim/faults`, { metricsUnavailable: true })
    expect(on.status).toBe(200)
    expect(on.json.metricsUnavailable).toBe(true)
    expect((await request(`${sim.url}/metrics`)).statusCode).toBe(500)
    await postJson(`${sim.url}/sim/faults`, { metricsUnavailable: false })
    expect((await scrape(sim.url)).has('vllm:num_requests_running')).toBe(true)
  })

  it('refuses an invalid fault with a 400 naming the field', async () => {
    sim = await startSim({ speed: 100 })
    const bad = await postJson(`${sim.url}/sim/faults`, { errorRate: 2 })
    expect(bad.status).toBe(400)
    expect(bad.json.error.param).toBe('faults.errorRate')
    const unknown = await postJson(`${sim.url}/sim/faults`, { explode: true })
    expect(unknown.status).toBe(400)
    expect(unknown.json.error.message).toContain('explode')
    expect(() => sim!.setFaults({ streamCutRate: -1 })).toThrow(/streamCutRate/)
  })

  it('delays /metrics by metricsDelayMs', async () => {
    sim = await startSim({ speed: 1, faults: { metricsDelayMs: 300 } })
    const started = performance.now()
    await scrape(sim.url)
    expect(performance.now() - started).toBeGreaterThanOrEqual(290)
    sim.setFaults({ metricsDelayMs: 0 })
    const fast = performance.now()
    await scrape(sim.url)
    expect(performance.now() - fast).toBeLessThan(290)
  })

  it('latency spikes stretch the time to first token (engine on a manual clock)', async () => {
    const clock = createManualClock()
    const latency = { stepFixedMs: 2, prefillTokenMs: 0, runningSeqMs: 0, contextTokenMs: 0 }
    sim = await startSim({ latency }, { clock })
    const ttftSum = async (): Promise<number> => {
      const text = await (await request(`${sim!.url}/metrics`)).body.text()
      return Number(/^vllm:time_to_first_token_seconds_sum\{[^}]*\} (\S+)$/m.exec(text)?.[1])
    }
    const oneToken = async (): Promise<void> => {
      const pending = postJson(`${sim!.url}/v1/completions`, { prompt: 'hi', max_tokens: 1 })
      await waitFor(() => sim!.engineState().waiting === 1, 5_000, 'the request to arrive')
      clock.advance(1_000)
      await pending
    }
    await oneToken()
    expect(await ttftSum()).toBeCloseTo(0.002, 6)
    sim.setFaults({ latencySpikeRate: 1, latencySpikeMs: 200 })
    await oneToken()
    expect(await ttftSum()).toBeCloseTo(0.002 + 0.202, 6)
  })

  it('dieAfterMs takes the server down', async () => {
    sim = await startSim({ speed: 1, faults: { dieAfterMs: 50 } })
    const url = sim.url
    await waitFor(
      async () => {
        try {
          await request(`${url}/health`)
          return false
        } catch {
          return true
        }
      },
      5_000,
      'the server to die',
    )
  })

  it('stream results stay complete when no fault is set', async () => {
    sim = await startSim({ speed: 100 })
    const result = await stream(`${sim.url}/v1/completions`, {
      prompt: 'hi',
      max_tokens: 20,
      ignore_eos: true,
      stream: true,
    })
    expect(result.done).toBe(true)
    expect(result.events).toHaveLength(20)
  })
})
