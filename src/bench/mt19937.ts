import type { Random } from '../core/index.js'

/**
 * The Mersenne Twister behind numpy's legacy `np.random` and Python's `random`, so that kvgate draws the same
 * numbers as vLLM's multi-turn bench for the same seed: its conversation generator calls `np.random.seed(seed)`
 * and then numpy's legacy samplers, and each client seeds `random` and `np.random` with `seed + client_id + 1`.
 * Matsumoto and Nishimura's reference algorithm (mt19937ar.c), with numpy's and CPython's seeding.
 */
const N = 624
const M = 397
const MATRIX_A = 0x9908b0df
const UPPER_MASK = 0x80000000
const LOWER_MASK = 0x7fffffff

class Mt19937 {
  readonly #mt = new Uint32Array(N)
  #index = N + 1

  /** `init_genrand`: numpy's `RandomState(seed)` / `np.random.seed(seed)` for an integer seed. */
  seedInt(seed: number): void {
    const mt = this.#mt
    mt[0] = seed >>> 0
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1] as number
      const x = prev ^ (prev >>> 30)
      // 1812433253 · x + i, modulo 2^32 (Math.imul keeps the low 32 bits of the product exactly).
      mt[i] = (Math.imul(x, 1812433253) + i) >>> 0
    }
    this.#index = N
  }

  /** `init_by_array`: CPython's `random.seed(n)` for an integer n, the key being n's 32-bit words. */
  seedArray(key: readonly number[]): void {
    this.seedInt(19650218)
    const mt = this.#mt
    let i = 1
    let j = 0
    const length = Math.max(1, key.length)
    for (let k = Math.max(N, length); k > 0; k--) {
      const prev = mt[i - 1] as number
      const x = prev ^ (prev >>> 30)
      mt[i] = (((mt[i] as number) ^ (Math.imul(x, 1664525) >>> 0)) + (key[j] ?? 0) + j) >>> 0
      i++
      j++
      if (i >= N) {
        mt[0] = mt[N - 1] as number
        i = 1
      }
      if (j >= length) j = 0
    }
    for (let k = N - 1; k > 0; k--) {
      const prev = mt[i - 1] as number
      const x = prev ^ (prev >>> 30)
      mt[i] = (((mt[i] as number) ^ (Math.imul(x, 1566083941) >>> 0)) - i) >>> 0
      i++
      if (i >= N) {
        mt[0] = mt[N - 1] as number
        i = 1
      }
    }
    mt[0] = 0x80000000
    this.#index = N
  }

  nextUint32(): number {
    const mt = this.#mt
    if (this.#index >= N) {
      if (this.#index === N + 1) this.seedInt(5489)
      for (let k = 0; k < N; k++) {
        const y = ((mt[k] as number) & UPPER_MASK) | ((mt[(k + 1) % N] as number) & LOWER_MASK)
        mt[k] = ((mt[(k + M) % N] as number) ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0)) >>> 0
      }
      this.#index = 0
    }
    let y = mt[this.#index++] as number
    y ^= y >>> 11
    y ^= (y << 7) & 0x9d2c5680
    y ^= (y << 15) & 0xefc60000
    y ^= y >>> 18
    return y >>> 0
  }

  /** 53-bit double in [0, 1): numpy's `random_sample` and CPython's `random()` build it the same way. */
  nextDouble(): number {
    const a = this.nextUint32() >>> 5
    const b = this.nextUint32() >>> 6
    return (a * 67108864 + b) / 9007199254740992
  }
}

/**
 * What numpy's legacy samplers read: a 53-bit double, a 32-bit word, and a normal draw by the polar method with
 * its spare value cached (`legacy_gauss`). `next()` is the double, so it is also a kvgate `Random`.
 */
export interface LegacyRandom extends Random {
  nextUint32(): number
  gauss(): number
}

function withGauss(draw: { next(): number; nextUint32(): number }): LegacyRandom {
  let spare: number | undefined
  return {
    next: () => draw.next(),
    nextUint32: () => draw.nextUint32(),
    gauss() {
      if (spare !== undefined) {
        const value = spare
        spare = undefined
        return value
      }
      let x1: number
      let x2: number
      let r2: number
      do {
        x1 = 2 * draw.next() - 1
        x2 = 2 * draw.next() - 1
        r2 = x1 * x1 + x2 * x2
      } while (r2 >= 1 || r2 === 0)
      const f = Math.sqrt((-2 * Math.log(r2)) / r2)
      spare = f * x1
      return f * x2
    },
  }
}

/** `np.random.seed(seed)`: numpy's legacy global state, seeded with a 32-bit integer. */
export function createNumpyRandomState(seed: number): LegacyRandom {
  const mt = new Mt19937()
  mt.seedInt(seed)
  return withGauss({ next: () => mt.nextDouble(), nextUint32: () => mt.nextUint32() })
}

/**
 * numpy's algorithms over another generator (kvgate's seeded sfc32): the same distributions, other numbers.
 * Used for every input that does not have to reproduce vLLM's draws.
 */
export function asLegacyRandom(random: Random): LegacyRandom {
  if ('nextUint32' in random && 'gauss' in random) return random as LegacyRandom
  return withGauss({ next: () => random.next(), nextUint32: () => Math.floor(random.next() * 4294967296) >>> 0 })
}

/** CPython's `random` module, as far as vLLM's client uses it: `random.seed(n)` and `random.choice(seq)`. */
export interface PythonRandom extends Random {
  /** `random.choice`: an index drawn by `_randbelow_with_getrandbits(length)`. */
  choiceIndex(length: number): number
}

export function createPythonRandom(seed: number): PythonRandom {
  const mt = new Mt19937()
  // CPython seeds from |n| split into 32-bit words, least significant first (one word 0 for n = 0).
  let n = Math.abs(Math.trunc(seed))
  const key: number[] = []
  do {
    key.push(n % 4294967296)
    n = Math.floor(n / 4294967296)
  } while (n > 0)
  mt.seedArray(key)
  const getrandbits = (k: number): number => (k === 0 ? 0 : mt.nextUint32() >>> (32 - k))
  return {
    next: () => mt.nextDouble(),
    choiceIndex(length) {
      if (length <= 0) return 0
      // k = length.bit_length(), at most 32 bits here (a client never holds 2^32 conversations).
      const k = 32 - Math.clz32(length)
      let r = getrandbits(k)
      while (r >= length) r = getrandbits(k)
      return r
    },
  }
}
