import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests start real servers on loopback; separate processes keep their sockets and timers apart.
    pool: 'forks',
    testTimeout: 60_000, // 60 seconds: end-to-end bursts through the emulator at --speed
    hookTimeout: 30_000, // 30 seconds
    reporters: ['default'],
  },
})
