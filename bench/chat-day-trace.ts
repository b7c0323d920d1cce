/**
 * A synthetic trace in seed 000's format (`user_id time_stamp(seconds) query_length response_length
 * round_index`), shaped like a day of chat traffic, for tests and benchmarks of `kvgate bench analyze`:
 * seed 000's real trace is not redistributable here.
 *
 * - Sessions start through the day with more of them in the busy hours (weights per hour, uniform within).
 * - Rounds per session: lognormal, median 3 (mean about 4), 1 to 40.
 * - Query length: lognormal, median 60 tokens (mean about 90), 4 to 2,048, the two chat markers included.
 * - Response length: lognormal, median 200 tokens (mean about 275), 1 to 2,000.
 * - Between two rounds: the answer's generation at 25 tokens/s, then reading and typing, lognormal, median
 *   20 s (mean about 30 s), at most 15 minutes.
 * - 15% of users come back 10 to 90 minutes after their session ended for a new conversation (round 0
 *   again), which the reader counts as a second conversation of the same user.
 * - Timestamps start at 8:00 (28,800 s) with millisecond precision, like the paper's 8:00–20:00 trace.
 *
 * `npx tsx bench/chat-day-trace.ts --users 1500 --hours 2 --seed 1 > test/bench/fixtures/conversation-day.txt`
 * made the bundled fixture.
 */
import type { Random } from '../src/core/index.js'
import { createSeededRandom, randomNormal } from '../src/core/index.js'

export interface ChatDayOptions {
  users: number
  hours: number
  seed: number
}

/** Relative session starts per hour of the day from 8:00: a morning ramp, a busy midday, a quieter evening. */
const HOURLY_WEIGHTS = [0.6, 1.0, 1.4, 1.2, 0.9, 1.1, 1.3, 1.2, 1.0, 0.8, 0.6, 0.5] as const
const DAY_START_SEC = 8 * 3600
const DECODE_TOKENS_PER_SEC = 25

const lognormal = (random: Random, median: number, sigma: number, min: number, max: number): number =>
  Math.min(max, Math.max(min, Math.round(median * Math.exp(sigma * randomNormal(random)))))

export function generateChatDayTrace(options: ChatDayOptions): string {
  const random = createSeededRandom(options.seed)
  const weights = Array.from({ length: options.hours }, (_, h) => HOURLY_WEIGHTS[h % HOURLY_WEIGHTS.length] as number)
  const total = weights.reduce((a, b) => a + b, 0)
  const startTime = (): number => {
    let pick = random.next() * total
    let hour = 0
    while (hour < weights.length - 1 && pick >= (weights[hour] as number)) pick -= weights[hour++] as number
    return (hour + random.next()) * 3600
  }
  const rows: { t: number; line: string }[] = []
  const session = (user: number, start: number): number => {
    const rounds = lognormal(random, 3, 0.8, 1, 40)
    let t = start
    for (let round = 0; round < rounds; round++) {
      const query = lognormal(random, 60, 0.9, 4, 2048)
      const response = lognormal(random, 200, 0.8, 1, 2000)
      rows.push({ t, line: `${user} ${(DAY_START_SEC + t).toFixed(3)} ${query} ${response} ${round}` })
      t += response / DECODE_TOKENS_PER_SEC + lognormal(random, 20, 0.9, 2, 900)
    }
    return t
  }
  for (let user = 1; user <= options.users; user++) {
    const end = session(user, startTime())
    if (random.next() < 0.15) session(user, end + (10 + random.next() * 80) * 60)
  }
  rows.sort((a, b) => a.t - b.t)
  return `user_id time_stamp(seconds) query_length response_length round_index\n${rows.map((r) => r.line).join('\n')}\n`
}

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  const value = i >= 0 ? Number(process.argv[i + 1]) : fallback
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a number > 0`)
  return value
}

if (process.argv[1]?.endsWith('chat-day-trace.ts') || process.argv[1]?.endsWith('chat-day-trace.js')) {
  process.stdout.write(
    generateChatDayTrace({ users: flag('users', 900), hours: flag('hours', 4), seed: flag('seed', 1) }),
  )
}
