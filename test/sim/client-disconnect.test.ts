import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { promptOf, scrape, waitFor } from './support.js'

/** A client that goes away aborts its request: it leaves the batch or the queue and its blocks are freed. */
describe('client disconnect', () => {
  let sim: SimHandle
  beforeAll(async () => {
    sim = await startSim({ speed: 20, numGpuBlocks: 200, maxNumSeqs: 1 })
  })
  afterAll(async () => {
    await sim.close()
  })

  const abortCount = async (): Promise<number> => {
    const family = (await scrape(sim.url)).get('vllm:request_success_total')
    return Number(family?.metrics.find((m) => m.labels?.['finished_reason'] === 'abort')?.value)
  }

  it('aborts a streaming request mid-stream and a queued one, freeing their blocks', async () => {
    const running = new AbortController()
    const queued = new AbortController()
    const body = (seed: number): string =>
      JSON.stringify({ prompt: promptOf(300, seed), max_tokens: 2000, ignore_eos: true, stream: true })
    const first = await request(`${sim.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: body(1),
      signal: running.signal,
    })
    const second = request(`${sim.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: body(2),
      signal: queued.signal,
    })
    // Read a few tokens of the first; the second waits because max_num_seqs is 1.
    // (Breaking out of a for-await would destroy the body, so listen and pause instead.)
    await new Promise<void>((resolve) => {
      let seen = ''
      const onData = (chunk: Buffer): void => {
        seen += chunk.toString()
        if (seen.split('data: ').length > 5) {
          first.body.off('data', onData)
          first.body.pause()
          resolve()
        }
      }
      first.body.on('data', onData)
    })
    await waitFor(
      () => sim.engineState().running === 1 && sim.engineState().waiting === 1,
      5_000,
      'one running, one waiting',
    )
    expect(sim.engineState().usedBlocks).toBeGreaterThanOrEqual(19)

    queued.abort()
    await second.catch(() => undefined)
    await waitFor(() => sim.engineState().waiting === 0, 5_000, 'the queued request to leave')
    expect(sim.engineState().running).toBe(1)

    running.abort()
    await waitFor(
      () => sim.engineState().running === 0 && sim.engineState().usedBlocks === 0,
      5_000,
      'the running request to leave',
    )
    expect(await abortCount()).toBe(2)
  })

  it('aborts a non-streaming request whose client hangs up', async () => {
    const controller = new AbortController()
    const pending = request(`${sim.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: promptOf(100), max_tokens: 3000, ignore_eos: true }),
      signal: controller.signal,
    })
    await waitFor(() => sim.engineState().running === 1, 5_000, 'the request to run')
    controller.abort()
    await pending.catch(() => undefined)
    await waitFor(
      () => sim.engineState().running === 0 && sim.engineState().usedBlocks === 0,
      5_000,
      'the request to be aborted',
    )
  })
})
