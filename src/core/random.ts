/**
 * Seeded randomness as a collaborator. The emulator's output lengths, the bench's arrivals and synthetic
 * prompts all draw from a `Random`, so the same seed gives the same run.
 */
export interface Random {
  /** Uniform in [0, 1). */
  next(): number
}

/**
 * sfc32 (Chris Doty-Humphrey's Small Fast Counter): 128 bits of state, passes PractRand, and is small enough
 * that pulling in a dependency for it would cost more than it saves.
 */
export function createSeededRandom(seed: number): Random {
  let a = 0x9e3779b9
  let b = 0x243f6a88
  let c = 0xb7e15162
  let d = seed >>> 0
  const step = (): number => {
    a >>>= 0
    b >>>= 0
    c >>>= 0
    d >>>= 0
    const t = (((a + b) | 0) + d) | 0
    d = (d + 1) | 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) | 0
    c = (c << 21) | (c >>> 11)
    c = (c + t) | 0
    return (t >>> 0) / 4294967296
  }
  // Mix the seed through the state before the first draw so nearby seeds diverge.
  for (let i = 0; i < 15; i++) step()
  return { next: step }
}

/** Uniform integer in [min, max], both inclusive. */
export function randomInt(random: Random, min: number, max: number): number {
  return min + Math.floor(random.next() * (max - min + 1))
}

/** Standard normal draw (Box–Muller). */
export function randomNormal(random: Random): number {
  let u = 0
  while (u === 0) u = random.next()
  const v = random.next()
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)
}
