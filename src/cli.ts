#!/usr/bin/env node
import { readFileSync } from 'node:fs'
import { Command } from 'commander'
import { createSimCommand } from './sim/index.js'
import { createBenchCommand } from './bench/index.js'
import { createConfigCommand, createReloadCommand, createServeCommand } from './gateway/index.js'

/**
 * The one `kvgate` executable. Each subcommand is built by the module that owns it (`createSimCommand` in
 * src/sim, `createServeCommand`, `createConfigCommand` and `createReloadCommand` in src/gateway, `createBenchCommand` in src/bench) and only registered here.
 */
const packageJson = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }

const program = new Command('kvgate')
  .description('KV-cache-aware admission-control gateway for vLLM, with a vLLM emulator and a load generator')
  .version(packageJson.version)

program.addCommand(createServeCommand())
program.addCommand(createConfigCommand())
program.addCommand(createReloadCommand())
program.addCommand(createSimCommand())
program.addCommand(createBenchCommand())

await program.parseAsync(process.argv)
