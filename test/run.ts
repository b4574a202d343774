/**
 * Runs every test/**\/*.test.ts in its own Node process (a crash or a leaked handle in one file
 * cannot hide another's result), streams its output, and ends with `N passed, N failed`.
 * Usage: npm test [-- FILTER...]  (files whose path contains one of the filters)
 * test/package/ (the single binaries; `npm run test:package` builds them first) and test/chaos/
 * (the reliability and hostile-input run, `npm run test:chaos`) run only when a filter names them.
 * The bundle the CLI runs (dist/outpost.cjs) is built first, so no test runs a stale build.
 * Files run TEST_JOBS at a time (default: 2, or 1 on a one-core machine); each file's output is
 * printed whole when it ends, with how long it took, so parallel files never interleave.
 */
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const root = path.resolve(__dirname)
/** Folders that run only when a filter names them: the single binaries and the chaos run. */
const OPT_IN = ['package', 'chaos']
const filters = process.argv.slice(2)

function find(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) return e.name === 'fixtures' || (OPT_IN.includes(e.name) && p === path.join(root, e.name) && !filters.some((f) => f.includes(e.name))) ? [] : find(p)
    return e.name.endsWith('.test.ts') ? [p] : []
  }).sort()
}

interface Result { file: string; passed: number; failed: number; skipped: number; code: number | null }

function runFile(file: string): Promise<Result> {
  return new Promise((resolve) => {
    const started = Date.now()
    const child = spawn(process.execPath, ['--import', 'tsx', file], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => { out += d })
    child.stderr.on('data', (d: Buffer) => { err += d })
    child.on('close', (code) => {
      process.stdout.write(`\n# ${path.relative(process.cwd(), file)} (${((Date.now() - started) / 1000).toFixed(1)} s)\n${out}`)
      if (err !== '') process.stderr.write(err)
      const num = (label: string): number => Number(new RegExp(`${label}:\\s+(\\d+)`).exec(out)?.[1] ?? 0)
      const total = num('Total')
      const passed = num('Passed')
      const skipped = num('Skipped')
      let failed = total - passed - skipped
      // A file that crashed or exited non-zero without reporting a failure still fails.
      if (code !== 0 && failed === 0) failed = 1
      resolve({ file, passed, failed, skipped, code })
    })
  })
}

async function main(): Promise<void> {
  // Tests run the CLI from dist/outpost.cjs: build it from the sources now, never a stale one.
  const build = spawnSync(process.execPath, [path.join(root, '..', 'packaging', 'build.mjs')], { stdio: 'inherit' })
  if (build.status !== 0) {
    process.stdout.write('0 passed, 1 failed\n')
    process.exitCode = 1
    return
  }
  const files = find(root).filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  const jobs = Math.max(1, Number(process.env.TEST_JOBS ?? Math.min(2, os.availableParallelism())) || 1)
  const results: Result[] = []
  const queue = [...files]
  await Promise.all(Array.from({ length: Math.min(jobs, queue.length) }, async () => {
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) results.push(await runFile(file))
  }))
  const sum = (k: 'passed' | 'failed' | 'skipped'): number => results.reduce((a, r) => a + r[k], 0)
  const bad = results.filter((r) => r.failed > 0)
  process.stdout.write('\n')
  for (const r of bad) process.stdout.write(`failed: ${path.relative(process.cwd(), r.file)} (${r.failed} failed, exit ${r.code})\n`)
  const skipped = sum('skipped')
  process.stdout.write(`${sum('passed')} passed, ${sum('failed')} failed${skipped > 0 ? `, ${skipped} skipped` : ''}\n`)
  process.exitCode = files.length === 0 || bad.length > 0 ? 1 : 0
}

void main()
