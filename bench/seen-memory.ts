/**
 * What the dedup set costs in memory once loaded: a store holding N seen ids (ULIDs) is written,
 * then opened by a fresh process, which reports its RSS, V8 heap and external memory (Buffers,
 * sql.js's WebAssembly memory and its in-memory file) after a
 * full GC, against the same for an empty store. Format 3 (runs) and formats 1-2 (rows, as
 * keepOldFormat keeps them), alternated. JSON lines.
 *   node --expose-gc --import tsx bench/seen-memory.ts [N]
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Outbox } from '../src/store/outbox'

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
const ulid = (ms: number): string => {
  let t = ''
  for (let i = 0, v = ms; i < 10; i++, v = Math.floor(v / 32)) t = CROCKFORD[v % 32]! + t
  let r = ''
  for (let i = 0; i < 16; i++) r += CROCKFORD[Math.floor(Math.random() * 32)]!
  return t + r
}

async function write(dir: string, n: number, rows: boolean): Promise<void> {
  const ob = await Outbox.open({ dir, maxBytes: 1 << 30, checkpointBytes: 64 << 20, keepOldFormat: rows })
  const t0 = Date.now() - 3_600_000
  for (let i = 0; i < n; i += 1000) {
    await ob.markSeen(Array.from({ length: 1000 }, (_, k) => ulid(t0 + Math.floor(((i + k) / n) * 3_600_000))))
    if (i % 50_000 === 0) await ob.checkpoint()
  }
  await ob.close()
}

async function measure(dir: string, rows: boolean): Promise<void> {
  const ob = await Outbox.open({ dir, maxBytes: 1 << 30, keepOldFormat: rows })
  for (let i = 0; i < 3; i++) (globalThis as { gc?: () => void }).gc?.()
  const m = process.memoryUsage()
  console.log(JSON.stringify({ seen: ob.stats().seen, rssMB: m.rss / 1e6, heapMB: m.heapUsed / 1e6, externalMB: m.external / 1e6 }))
  await ob.close()
}

async function main(): Promise<void> {
  const [mode, dir, arg] = process.argv.slice(2)
  if (mode === 'write') return write(dir!, Number(arg), process.env.ROWS === '1')
  if (mode === 'measure') return measure(dir!, process.env.ROWS === '1')
  const n = Number(mode ?? 500_000)
  const child = (args: string[], rows: boolean): string => {
    const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', __filename, ...args], { env: { ...process.env, ROWS: rows ? '1' : '0' }, encoding: 'utf8' })
    if (r.status !== 0) throw new Error(r.stderr)
    return r.stdout.trim()
  }
  for (const rows of [true, false, true, false]) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-seenmem-'))
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-seenmem-'))
    child(['write', dir, String(n)], rows)
    child(['write', empty, '0'], rows)
    const full = JSON.parse(child(['measure', dir], rows)) as Record<string, number>
    const none = JSON.parse(child(['measure', empty], rows)) as Record<string, number>
    // The newest snapshot and the run files: what a start reads.
    const files = fs.readdirSync(dir)
    const newest = files.filter((f) => f.endsWith('.db')).sort().at(-1)!
    const snap = [newest, ...files.filter((f) => f.endsWith('.run'))].reduce((a, f) => a + fs.statSync(path.join(dir, f)).size, 0)
    console.log(JSON.stringify({ layout: rows ? 'rows' : 'runs', seen: full.seen, rssDeltaMB: Math.round(full.rssMB! - none.rssMB!), externalDeltaMB: Math.round(full.externalMB! - none.externalMB!), heapDeltaMB: Math.round(full.heapMB! - none.heapMB!), rssBytesPerId: Math.round(((full.rssMB! - none.rssMB!) * 1e6) / n), snapshotMB: Math.round(snap / 1e5) / 10 }))
    fs.rmSync(dir, { recursive: true, force: true })
    fs.rmSync(empty, { recursive: true, force: true })
  }
}

void main()
