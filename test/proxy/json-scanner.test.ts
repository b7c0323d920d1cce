import { describe, expect, it } from 'vitest'
import { createSeededRandom } from '../../src/core/index.js'
import { createJsonScanner } from '../../src/proxy/index.js'

/** Byte by byte, the obvious way: what the scanner's jumps within strings must agree with. */
function reference(text: Uint8Array, maxDepth: number, maxElements: number): 'depth' | 'elements' | undefined {
  let inString = false
  let escaped = false
  let depth = 0
  let elements = 0
  for (const byte of text) {
    if (inString) {
      if (escaped) escaped = false
      else if (byte === 0x5c) escaped = true
      else if (byte === 0x22) inString = false
      continue
    }
    if (byte === 0x22) inString = true
    else if (byte === 0x5b || byte === 0x7b) {
      if (++depth > maxDepth) return 'depth'
      if (++elements > maxElements) return 'elements'
    } else if (byte === 0x5d || byte === 0x7d) depth--
    else if (byte === 0x2c && ++elements > maxElements) return 'elements'
  }
  return undefined
}

describe('the JSON scanner of the bounded body parser', () => {
  it('agrees with a byte-by-byte reading on random text split at random points', () => {
    const random = createSeededRandom(11)
    const alphabet = ['[', ']', '{', '}', '"', '\\', ',', 'a', '1', ' ', ':']
    // Long runs of plain letters, so strings are long enough for the scan's jumps as well as its byte reads.
    const piece = () =>
      random.next() < 0.3 ? 'a'.repeat(Math.floor(random.next() * 60)) : alphabet[Math.floor(random.next() * 11)]
    for (let trial = 0; trial < 5_000; trial++) {
      const text = Buffer.from(Array.from({ length: Math.floor(random.next() * 40) }, piece).join(''))
      const scanner = createJsonScanner({ maxJsonDepth: 3, maxJsonElements: 6 })
      let found: string | undefined
      for (let at = 0; at < text.length && found === undefined; ) {
        const next = at + 1 + Math.floor(random.next() * (random.next() < 0.5 ? 10 : 200))
        found = scanner.push(text.subarray(at, next))
        at = next
      }
      const kind = found === undefined ? undefined : found.includes('deeper') ? 'depth' : 'elements'
      expect(kind, text.toString()).toBe(reference(text, 3, 6))
    }
  })

  it('ignores brackets and commas inside strings, escaped quotes included', () => {
    const scanner = createJsonScanner({ maxJsonDepth: 2, maxJsonElements: 3 })
    expect(scanner.push(Buffer.from('{"a":"[[[[,,,,\\"[[[,,,"}'))).toBeUndefined()
    expect(scanner.push(Buffer.from('[[['))).toBe('arrays and objects nest deeper than 2 levels')
  })
})
