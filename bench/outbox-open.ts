/**
 * Opening an outbox with 100k stored messages, in-process (store format 4's scan against format
 * 3's rows): not part of `npm run bench`. Run from a checkout, optionally against another one:
 *
 *   node --expose-gc --import tsx bench/outbox-open.ts [checkout]
 *
 * Prints, for 100k messages of 200 B with 26-byte ids over 4 destinations:
 *   fill:   heap used + external after the fill and a snapshot, the outbox open (gc() twice)
 *   index:  heap used + external an open adds (gc() twice before and after)
 *   clean:  six opens of the store after a clean close, wall ms / CPU ms each
 *   crash:  four fills each reopened without a close (checkpoint() at 70k, 30k more: the same
 *           replay on every format), wall ms / CPU ms (records replayed)
 * Alternate two checkouts (base, after, base, after) on a loaded machine.
 */
import fs from 'node:fs'
import path from 'node:path'

const root = path.resolve(process.argv[2] ?? path.join(__dirname, '..'))
const N = 100_000
const body = new Uint8Array(200).fill(0x61)
const gc = (): void => (globalThis as { gc?: () => void }).gc?.()

interface Ob {
  enqueue(e: object): Promise<unknown>
  checkpoint(): Promise<void>
  close(): Promise<void>
  stats(): { count: number; recovery: { replayedRecords: number } }
}
type Open = (o: object) => Promise<Ob>

async function fill(open: Open, dir: string, crashAt = -1): Promise<Ob> {
  const ob = await open({ dir, maxBytes: 1 << 30, checkpointBytes: crashAt >= 0 ? 1 << 30 : undefined })
  let pending: Promise<unknown>[] = []
  for (let i = 0; i < N; i++) {
    pending.push(ob.enqueue({ id: `01JX${String(i).padStart(22, '0')}`, dest: `node${i % 4}`, body, createdAt: i, expiresAt: 0 }))
    if (pending.length >= 1000 || i === crashAt) {
      await Promise.all(pending)
      pending = []
    }
    if (i === crashAt) await ob.checkpoint()
  }
  await Promise.all(pending)
  return ob
}

async function main(): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Outbox } = require(path.join(root, 'src/store/outbox.ts')) as { Outbox: { open: Open } }
  const open = (o: object): Promise<Ob> => Outbox.open(o)
  const base = path.join(root, '.tmp')
  fs.mkdirSync(base, { recursive: true })
  const dir = fs.mkdtempSync(path.join(base, 'open-'))
  const mem = (): number => {
    gc()
    gc()
    const m = process.memoryUsage()
    return m.heapUsed + m.external
  }
  const before = mem()
  const filled = await fill(open, dir)
  await filled.checkpoint()
  console.log(root, 'fill:', ((mem() - before) / 1e6).toFixed(2), 'MB')
  await filled.close()

  const emptyDir = fs.mkdtempSync(path.join(base, 'open-'))
  const empty = await open({ dir: emptyDir, maxBytes: 1 << 30 })
  const m0 = mem()
  let ob = await open({ dir, maxBytes: 1 << 30 })
  console.log(root, 'index:', ((mem() - m0) / 1e6).toFixed(2), 'MB')
  await ob.close()
  await empty.close()

  const clean: string[] = []
  for (let r = 0; r < 6; r++) {
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    ob = await open({ dir, maxBytes: 1 << 30 })
    const c = process.cpuUsage(c0)
    clean.push(`${(performance.now() - t0).toFixed(0)}/${((c.user + c.system) / 1000).toFixed(0)}`)
    if (ob.stats().count !== N) throw new Error(`found ${ob.stats().count}`)
    await ob.close()
  }
  console.log(root, 'clean (wall/CPU ms):', clean.join(' '))

  const crash: string[] = []
  for (let r = 0; r < 4; r++) {
    const d = fs.mkdtempSync(path.join(base, 'crash-'))
    const filled = await fill(open, d, 69_999)
    // What SIGKILL leaves: no final snapshot, the lock file of a dead process.
    ;(filled as unknown as { lock: { release(): void } }).lock.release()
    gc()
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    const again = await open({ dir: d, maxBytes: 1 << 30, checkpointBytes: 1 << 30 })
    const c = process.cpuUsage(c0)
    const st = again.stats()
    if (st.count !== N) throw new Error(`found ${st.count}`)
    crash.push(`${(performance.now() - t0).toFixed(0)}/${((c.user + c.system) / 1000).toFixed(0)} (${st.recovery.replayedRecords})`)
    await again.close()
    fs.rmSync(d, { recursive: true, force: true })
  }
  console.log(root, 'crash (wall/CPU ms, replayed):', crash.join(' '))
  fs.rmSync(dir, { recursive: true, force: true })
  fs.rmSync(emptyDir, { recursive: true, force: true })
}

void main()
