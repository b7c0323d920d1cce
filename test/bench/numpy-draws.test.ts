import { describe, expect, it } from 'vitest'
import { createNumpyRandomState, createPythonRandom, generateConversations } from '../../src/bench/index.js'
import { legacyRandint } from '../../src/bench/distributions.js'

/**
 * kvgate draws what vLLM's multi-turn bench draws for the same seed. The expected numbers below were printed by
 * numpy (1.24.2 and 2.4.6 agree: the legacy RandomState stream is frozen) and CPython 3.11, e.g.
 * `np.random.seed(0); np.random.randint(12, 19, size=24)`, `random.seed(1); random.random()`.
 */
describe("numpy's and Python's generators", () => {
  it('MT19937 as np.random.seed(0) and random.seed(1) set it up', () => {
    const numpy = createNumpyRandomState(0)
    expect([numpy.nextUint32(), numpy.nextUint32(), numpy.nextUint32()]).toEqual([2357136044, 2546248239, 3071714933])
    const python = createPythonRandom(1)
    expect(python.next()).toBe(0.13436424411240122)
    expect(Array.from({ length: 5 }, () => python.choiceIndex(3))).toEqual([0, 1, 0, 1, 1])
  })

  it('randint by masked rejection, as numpy legacy', () => {
    const numpy = createNumpyRandomState(0)
    const turns = Array.from({ length: 24 }, () => legacyRandint(numpy, 12, 19))
    expect(turns.map((n) => n + (n % 2))).toEqual([
      16, 18, 12, 16, 16, 16, 14, 16, 18, 14, 16, 18, 12, 12, 16, 14, 14, 18, 18, 12, 14, 18, 14, 18,
    ])
  })

  it("generate_conversations on vLLM's generate_multi_turn.json, seed 0: vLLM's turn counts, prefixes and lengths", () => {
    // The parameters of vLLM's benchmarks/multi_turn/generate_multi_turn.json.
    const spec = {
      filetype: 'generate_conversations',
      num_conversations: 24,
      prompt_input: {
        num_turns: { distribution: 'uniform', min: 12, max: 18 },
        common_prefix_num_tokens: { distribution: 'constant', value: 500 },
        prefix_num_tokens: { distribution: 'lognormal', average: 1000, max: 5000 },
        num_tokens: { distribution: 'uniform', min: 120, max: 160 },
      },
      prompt_output: { num_tokens: { distribution: 'uniform', min: 80, max: 120 } },
    }
    const { conversations, commonPrefixTokens } = generateConversations(spec, createNumpyRandomState(0), 'x')
    expect(commonPrefixTokens).toBe(500)
    expect(conversations.map((c) => c.turns.length * 2)).toEqual([
      16, 18, 12, 16, 16, 16, 14, 16, 18, 14, 16, 18, 12, 12, 16, 14, 14, 18, 18, 12, 14, 18, 14, 18,
    ])
    expect(conversations.map((c) => c.prefixTokens)).toEqual([
      1600, 372, 1019, 744, 1787, 743, 2507, 910, 1127, 2018, 1981, 910, 769, 459, 1118, 511, 619, 655, 483, 620, 586,
      375, 748, 1339,
    ])
    const first = conversations[0]?.turns ?? []
    // User lengths at the even (user) positions of numpy's 16 draws, answers at the odd ones. The first turn holds
    // the 500-token common prefix, vLLM's "0 is a nice number... " and its base prompt, more than its 151 tokens:
    // 500 + 8 + 11 of which the common prefix is counted apart.
    expect(first.map((t) => t.userTokens)).toEqual([19, 121, 155, 131, 147, 134, 132, 131])
    expect(first.map((t) => t.outputTokens)).toEqual([84, 92, 120, 95, 115, 95, 101, 115])
  })
})
