import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { createStopMatcher } from '../../src/sim/stop-strings.js'
import { postJson, stream } from './support.js'

/** `stop` strings: the output ends before the first match, `stop_reason` names it, streaming holds back a possible prefix. */
describe('stop strings', () => {
  it('matches across tokens, holds back what could start a match, and flushes it at the end', () => {
    const matcher = createStopMatcher([' and then'])!
    // The last 8 characters (the stop string's length − 1) are held back.
    expect(matcher.push(' bread', false)).toEqual({ emit: '', stop: null })
    expect(matcher.push(' and', false)).toEqual({ emit: ' b', stop: null })
    // The match starts in held-back text: what precedes it goes out, the rest never does.
    expect(matcher.push(' then', false)).toEqual({ emit: 'read', stop: ' and then' })

    const other = createStopMatcher(['xyz', ''])!
    expect(other.push(' a', false)).toEqual({ emit: '', stop: null })
    expect(other.push(' b', true)).toEqual({ emit: ' a b', stop: null })
    expect(createStopMatcher([])).toBeNull()
  })

  describe('over HTTP', () => {
    let sim: SimHandle
    beforeAll(async () => {
      sim = await startSim({ speed: 100 })
    })
    afterAll(async () => {
      await sim.close()
    })

    it('ends a choice at the stop string, even with ignore_eos, and reports it', async () => {
      const body = { prompt: 'go', seed: 7, max_tokens: 300, ignore_eos: true }
      const full = (await postJson(`${sim.url}/v1/completions`, body)).json
      const fullText = full.choices[0].text as string
      const at = fullText.indexOf(' cache')
      expect(at).toBeGreaterThan(0) // the seeded text contains the word, or the test proves nothing

      const stopped = (await postJson(`${sim.url}/v1/completions`, { ...body, stop: [' cache', 'never-matches'] })).json
      expect(stopped.choices[0]).toMatchObject({
        text: fullText.slice(0, at),
        finish_reason: 'stop',
        stop_reason: ' cache',
      })
      // The token that completed the stop string was generated, so it counts.
      expect(stopped.usage.completion_tokens).toBe(fullText.slice(0, at + ' cache'.length).split(' ').length - 1)

      const streamed = await stream(`${sim.url}/v1/completions`, { ...body, stop: ' cache', stream: true })
      const choices = streamed.events.map(
        (e) => (e['choices'] as Array<{ text: string; finish_reason: string | null; stop_reason: string | null }>)[0]!,
      )
      expect(choices.map((c) => c.text).join('')).toBe(fullText.slice(0, at))
      expect(choices.at(-1)).toMatchObject({ finish_reason: 'stop', stop_reason: ' cache' })
      expect(streamed.done).toBe(true)
      await new Promise((resolve) => setTimeout(resolve, 20))
      expect(sim.engineState()).toMatchObject({ running: 0, usedBlocks: 0 })
    })
  })
})
