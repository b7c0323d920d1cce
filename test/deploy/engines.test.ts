import { readFileSync } from 'node:fs'
import semver from 'semver'
import { describe, expect, it } from 'vitest'

// `engines.node` is a promise to operators: every package the installed gateway runs must accept the oldest Node it
// names. The lockfile records each package's own `engines`; dev-only tooling (vite needs 20.19) is left out.
const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { engines: { node: string } }
const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')) as {
  packages: Record<string, { version?: string; dev?: boolean; engines?: { node?: string } | string[] }>
}

describe('engines', () => {
  it("names a Node version that every runtime dependency's own engines range accepts", () => {
    const floor = semver.minVersion(pkg.engines.node)
    expect(floor).not.toBeNull()
    const refusing: string[] = []
    for (const [path, entry] of Object.entries(lock.packages)) {
      if (path === '' || entry.dev === true) continue
      const range = Array.isArray(entry.engines) ? undefined : entry.engines?.node
      if (range === undefined) continue
      if (!semver.satisfies(floor as semver.SemVer, range)) refusing.push(`${path}@${entry.version}: node ${range}`)
    }
    expect(refusing).toEqual([])
  })

  it('keeps the code on Node 20 (the machines CI runs on)', () => {
    expect(semver.satisfies('20.20.0', pkg.engines.node)).toBe(true)
  })
})
