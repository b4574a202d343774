/**
 * Every option a command takes is in its `--help` and in its section of docs/cli.md. Which
 * options a command takes is asked of the command itself: `outpost CMD --help --FLAG[=x]` prints
 * the help when the parser knows FLAG and is a usage error when it does not (`--help` first, so
 * a flag that takes a value never swallows it and nothing runs).
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { main } from '../../src/cli/index'

const ROOT = path.join(__dirname, '..', '..')
const CLI_DOC = fs.readFileSync(path.join(ROOT, 'docs', 'cli.md'), 'utf8')
const COMMANDS = ['agent', 'hub', 'up', 'send', 'nodes', 'jobs', 'job', 'status', 'call', 'cp', 'transfers', 'config', 'keys', 'upgrade', 'repl', 'shell', 'tunnel', 'version']
/** Every command's help lists these under "Global options"; docs/cli.md in its own table. */
const GLOBAL = ['--config', '--data-dir', '--log-level', '--debug', '--json', '--help', '--version']
/** Taken but not for people: the rollback watchdog an upgrade starts (`upgrade --watchdog`). */
const INTERNAL = new Set(['upgrade --watchdog'])

async function cli(argv: string[]): Promise<{ code: number; out: string }> {
  let out = ''
  const io = { argv, env: {}, cwd: ROOT, stdout: { write: (s: string) => { out += s } }, stderr: { write: () => undefined } }
  return { code: await main(io), out }
}

/** The section `## \`outpost CMD\`` of docs/cli.md, up to the next `## `. */
function docSection(command: string): string {
  const at = CLI_DOC.indexOf(`\n## \`outpost ${command}\``)
  assert.ok(at >= 0, `docs/cli.md has a section for outpost ${command}`)
  const next = CLI_DOC.indexOf('\n## ', at + 1)
  return CLI_DOC.slice(at, next < 0 ? undefined : next)
}

const mentions = (text: string, flag: string): boolean => new RegExp(`${flag}(?![a-z-])`).test(text)

/** The options a command's parser takes, among every --flag the helps and docs/cli.md name (and the internal ones). */
async function taken(command: string, candidates: string[]): Promise<string[]> {
  const out: string[] = []
  for (const flag of candidates) {
    if ((await cli([command, '--help', `${flag}=x`])).code === 0 || (await cli([command, '--help', flag])).code === 0) out.push(flag)
  }
  return out
}

test('help - every option a command takes is in its --help and its section of docs/cli.md', async () => {
  const helps = new Map<string, string>()
  for (const c of COMMANDS) {
    const r = await cli([c, '--help'])
    assert.is(r.code, 0, `outpost ${c} --help`)
    helps.set(c, r.out.split('Global options:')[0]!)
  }
  const candidates = new Set<string>(['--watchdog'])
  for (const text of [CLI_DOC, ...helps.values()]) for (const m of text.matchAll(/--[a-z][a-z-]*[a-z]/g)) candidates.add(m[0])
  for (const g of GLOBAL) candidates.delete(g)
  const missing: string[] = []
  for (const c of COMMANDS) {
    const section = docSection(c)
    for (const flag of await taken(c, [...candidates].sort())) {
      if (INTERNAL.has(`${c} ${flag}`)) continue
      if (!mentions(helps.get(c)!, flag)) missing.push(`outpost ${c} --help lacks ${flag}`)
      if (!mentions(section, flag)) missing.push(`docs/cli.md (outpost ${c}) lacks ${flag}`)
    }
  }
  assert.equal(missing, [])
})

test('help - the probe tells a flag a command takes from one it does not', async () => {
  assert.equal(await taken('nodes', ['--labels', '--watch', '--socket']), ['--labels', '--socket'])
  assert.equal(await taken('job', ['--watch', '--labels']), ['--watch'])
})

test.run()
