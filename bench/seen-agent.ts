/**
 * The dedup set in a running agent: RSS of an agent whose store holds 100k seen ids, and its
 * restart to connected after a clean stop and after a crash (50k more ids in the journal), for
 * this checkout's build against another (BENCH_BASE_ROOT, default /work/main: its bin/outpost.cjs,
 * its store code writing the data), alternated. JSON lines.
 *   node --import tsx bench/seen-agent.ts [PAIRS]
 */
import fs from 'node:fs'
import path from 'node:path'
import { abandonOutbox } from '../test/fixtures/abandon-outbox'
import { Cluster } from '../test/fixtures/cluster'
import { rssOf } from './proc-stats'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'

/** A ULID of time `ms` (random part from Math.random: enough for a benchmark). */
function ulid(ms: number): string {
  let t = ''
  for (let i = 0, v = ms; i < 10; i++, v = Math.floor(v / 32)) t = CROCKFORD[v % 32]! + t
  let r = ''
  for (let i = 0; i < 16; i++) r += CROCKFORD[Math.floor(Math.random() * 32)]!
  return t + r
}

interface StoreApi { markSeen(ids: string[]): Promise<void>; close(): Promise<void> }
type Open = (o: { dir: string; maxBytes: number }) => Promise<StoreApi>

/** Mark `n` ids seen (times over the last hour), in batches. */
async function mark(ob: StoreApi, n: number, from: number): Promise<void> {
  const t0 = Date.now() - 3_600_000
  for (let i = 0; i < n; i += 1000) await ob.markSeen(Array.from({ length: 1000 }, (_, k) => ulid(t0 + Math.floor(((from + i + k) / 200_000) * 3_600_000))))
}

async function one(label: string, root: string): Promise<Record<string, unknown>> {
  const { Outbox } = (await import(path.join(root, 'src', 'store', 'outbox.ts'))) as { Outbox: { open: Open } }
  const bin = path.join(root, 'bin', 'outpost.cjs')
  const c = await Cluster.create(['ship1'], { log: { level: 'warn' } })
  try {
    await c.startHub()
    const ship = c.node('ship1')
    const dir = path.join(ship.dataDir, 'outbox')
    fs.mkdirSync(dir, { recursive: true })
    let ob = await Outbox.open({ dir, maxBytes: 1 << 30 })
    await mark(ob, 100_000, 0)
    await ob.close()
    let t = performance.now()
    let p = await c.start('ship1', true, {}, bin)
    const cleanMs = performance.now() - t
    await sleep(5000)
    const rss = rssOf(p.child.pid!)
    await p.stop('SIGTERM')
    ob = await Outbox.open({ dir, maxBytes: 1 << 30 })
    await mark(ob, 50_000, 100_000)
    await abandonOutbox(ob)
    t = performance.now()
    p = await c.start('ship1', true, {}, bin)
    const crashMs = performance.now() - t
    await sleep(5000)
    const rssAfterCrash = rssOf(p.child.pid!)
    await p.stop('SIGKILL')
    // The newest snapshot and the dedup set's run files beside it (format 3).
    const files = fs.readdirSync(dir)
    const newest = files.filter((f) => f.endsWith('.db')).sort().at(-1)!
    const snap = [newest, ...files.filter((f) => f.endsWith('.run'))].reduce((a, f) => a + fs.statSync(path.join(dir, f)).size, 0)
    return { build: label, rssMB100k: Math.round(rss), restartCleanMs100k: Math.round(cleanMs), restartCrashMs150k: Math.round(crashMs), rssMB150k: Math.round(rssAfterCrash), snapshotMB: Math.round(snap / 1e5) / 10 }
  } finally {
    await c.destroy()
  }
}

async function main(): Promise<void> {
  const base = process.env.BENCH_BASE_ROOT ?? '/work/main'
  const pairs = Number(process.argv[2] ?? 2)
  for (let r = 0; r < pairs; r++) {
    console.log(JSON.stringify(await one('base', base)))
    console.log(JSON.stringify(await one('this', path.join(__dirname, '..'))))
  }
}

void main()
