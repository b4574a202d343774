import { createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Outbox, type OutboxOptions } from '../../src/store/outbox'
import { bodyFileName } from '../../src/store/outbox-bodies'
import { loadSqlJs } from '../../src/store/sqljs'
import { snapshotRows } from '../fixtures/snapshot-rows'
import { snapshotName } from '../../src/store/store-files'
import { rejectsCode } from '../helpers'

const t = suite('outbox bodies')
const tmpDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-bodies-'))
/** A body that says whose it is, of a size that varies with n. */
const bodyOf = (id: string, size: number): Uint8Array => new Uint8Array(Buffer.from(`${id};`.repeat(Math.ceil(size / (id.length + 1)) + 1).slice(0, size)))
const entry = (id: string, size = 200, dest = 'ship1') => ({ id, dest, body: bodyOf(id, size), createdAt: 1, expiresAt: 2 })
const open = (dir: string, o: Partial<OutboxOptions> = {}): Promise<Outbox> => Outbox.open({ dir, maxBytes: 1 << 30, ...o })
const bodyFiles = (dir: string): string[] => fs.readdirSync(dir).filter((f) => f.startsWith('bodies-')).sort()

/** One more snapshot with nothing else changed: the one before it (kept for a fallback) then lets go of what only it named. */
async function snapshotAgain(ob: Outbox): Promise<void> {
  await ob.enqueue(entry('pad'))
  await ob.remove('pad')
  await ob.checkpoint()
}

t('stored bodies leave sql.js for a body file and come back the same, before and after a restart', async () => {
  const dir = tmpDir()
  const ob = await open(dir)
  const sizes = [0, 1, 200, 5000, 300 * 1024] // one larger than a write chunk
  for (const [i, size] of sizes.entries()) await ob.enqueue(entry(`b${i}`, size))
  await ob.checkpoint()
  assert.equal(bodyFiles(dir).length, 1)
  for (const [i, size] of sizes.entries()) assert.equal(ob.get(`b${i}`)?.body, bodyOf(`b${i}`, size), `b${i} read back at once`)
  await ob.enqueue(entry('hot'))
  assert.equal(ob.head('ship1', 10).map((e) => e.id), ['b0', 'b1', 'b2', 'b3', 'b4', 'hot'])
  await ob.close()
  assert.equal(await snapshotRows(dir, 'SELECT count(*) FROM outbox'), [[0]], 'no row per message (store format 4)')
  assert.equal(await snapshotRows(dir, 'SELECT records FROM waiting_files'), [[6]], 'one body file of six records, none removed')
  assert.equal(await snapshotRows(dir, 'PRAGMA user_version'), [[4]])
  const again = await open(dir)
  assert.equal(again.all().map((e) => [e.id, e.body]), [...sizes.map((s, i) => [`b${i}`, bodyOf(`b${i}`, s)]), ['hot', bodyOf('hot', 200)]])
  assert.is(again.stats().bytes, sizes.reduce((a, b) => a + b, 200), 'byte count is rebuilt from the rows')
  await again.close()
})

t('removing every message of a body file deletes it once a snapshot without it is on disk', async () => {
  const dir = tmpDir()
  const ob = await open(dir)
  for (let i = 0; i < 10; i++) await ob.enqueue(entry(`a${i}`))
  await ob.checkpoint()
  const first = bodyFiles(dir)
  for (let i = 0; i < 10; i++) await ob.remove(`a${i}`)
  assert.equal(bodyFiles(dir), first, 'kept while the newest snapshot still names it')
  await ob.enqueue(entry('b0'))
  await ob.checkpoint()
  assert.ok(bodyFiles(dir).includes(first[0]!), 'kept while the snapshot before the newest names it')
  await snapshotAgain(ob)
  assert.not.ok(bodyFiles(dir).includes(first[0]!), bodyFiles(dir).join(' '))
  assert.equal(ob.all().map((e) => e.id), ['b0'])
  await ob.close()
})

t('a sparse body file is compacted: its live bodies move to the new file, and it goes', async () => {
  const dir = tmpDir()
  const ob = await open(dir)
  // Over 1 MiB, so only sparseness (not smallness) makes it a candidate.
  const n = 3000
  const pending: Promise<unknown>[] = []
  for (let i = 0; i < n; i++) pending.push(ob.enqueue(entry(`c${i}`, 400, `n${i % 2}`)))
  await Promise.all(pending)
  await ob.checkpoint()
  const [big] = bodyFiles(dir)
  const kept = new Set<string>()
  for (let i = 0; i < n; i++) {
    if (i % 4 === 0) kept.add(`c${i}`)
    else await ob.remove(`c${i}`)
  }
  await ob.enqueue(entry('new'))
  await ob.checkpoint()
  await snapshotAgain(ob)
  const files = bodyFiles(dir)
  assert.not.ok(files.includes(big!), `${big} is compacted away: ${files.join(' ')}`)
  assert.equal(await snapshotRows(dir, 'SELECT count(*) FROM waiting_files'), [[1]], 'the newest snapshot names one file')
  const check = (o: Outbox): void => {
    const all = o.all()
    assert.equal(all.map((e) => e.id), [...kept, 'new'])
    for (const e of all) assert.equal(e.body, bodyOf(e.id, e.id === 'new' ? 200 : 400), e.id)
    assert.equal(o.head('n0', 2).map((e) => e.id), ['c0', 'c4'], 'FIFO per destination holds')
  }
  check(ob)
  await ob.close()
  const again = await open(dir)
  check(again)
  await again.close()
})

t('small body files are merged, so a trickle of survivors does not leave a file per snapshot', async () => {
  const dir = tmpDir()
  const ob = await open(dir)
  for (let round = 0; round < 8; round++) {
    await ob.enqueue(entry(`s${round}`))
    await ob.checkpoint()
  }
  assert.equal(await snapshotRows(dir, 'SELECT count(*) FROM waiting_files'), [[1]], 'the newest snapshot names one file')
  assert.ok(bodyFiles(dir).length <= 2, `its file and at most one the snapshot before it names: ${bodyFiles(dir).join(' ')}`)
  assert.equal(ob.all().map((e) => e.body), Array.from({ length: 8 }, (_, i) => bodyOf(`s${i}`, 200)))
  await ob.close()
})

t('a snapshot from before body files (bodies in a BLOB column) opens, and its bodies move out at the next snapshot', async () => {
  const dir = tmpDir()
  const SQL = await loadSqlJs()
  const db = new SQL.Database()
  // The layout of the previous version, verbatim.
  db.exec(`
    CREATE TABLE IF NOT EXISTS outbox (
      seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, dest TEXT NOT NULL, body BLOB NOT NULL,
      createdAt INTEGER NOT NULL, expiresAt INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, nextAt INTEGER NOT NULL DEFAULT 0);
    CREATE INDEX IF NOT EXISTS outbox_dest ON outbox (dest, seq);
    CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, at INTEGER NOT NULL);
    CREATE INDEX IF NOT EXISTS seen_at ON seen (at);
    CREATE TABLE IF NOT EXISTS inbox (id TEXT PRIMARY KEY, fromNode TEXT NOT NULL, at INTEGER NOT NULL, body BLOB NOT NULL, state TEXT NOT NULL);`)
  const ins = db.prepare('INSERT INTO outbox (seq, id, dest, body, createdAt, expiresAt, attempts, nextAt) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
  for (let i = 1; i <= 20; i++) ins.run([i, `old${i}`, `n${i % 2}`, bodyOf(`old${i}`, 100 + i), 1, 2, i === 3 ? 2 : 0, 0])
  ins.free()
  db.run('INSERT INTO seen (id, at) VALUES (?, ?)', ['s1', Date.now()])
  fs.writeFileSync(path.join(dir, snapshotName(7)), db.export())
  db.close()

  const check = (o: Outbox): void => {
    assert.equal(o.all().map((e) => [e.id, e.body]), Array.from({ length: 20 }, (_, k) => [`old${k + 1}`, bodyOf(`old${k + 1}`, 101 + k)]))
    assert.is(o.get('old3')?.attempts, 2)
    assert.ok(o.hasSeen('s1'))
    assert.is(o.stats().bytes, Array.from({ length: 20 }, (_, k) => 101 + k).reduce((a, b) => a + b))
  }
  const ob = await open(dir)
  check(ob)
  await ob.remove('old20')
  await ob.enqueue(entry('old20', 120))
  assert.equal(ob.head('n0', 3).map((e) => e.id), ['old2', 'old4', 'old6'])
  await ob.close()
  assert.equal(await snapshotRows(dir, 'SELECT records FROM waiting_files'), [[20]], 'every body moved out to a body file, as records')
  assert.equal(await snapshotRows(dir, "SELECT name FROM pragma_table_info('outbox') WHERE name = 'body'"), [], 'no body column: an older outpost refuses the store instead of sending empty bodies')
  assert.equal(await snapshotRows(dir, 'SELECT count(*) FROM outbox'), [[0]], 'no row per message')
  assert.equal(await snapshotRows(dir, 'PRAGMA user_version'), [[4]])
  const again = await open(dir)
  check(again)
  await again.close()
})

t('a truncated or missing body file stops the open with outbox_corrupt, naming the file', async () => {
  const dir = tmpDir()
  const ob = await open(dir)
  for (let i = 0; i < 5; i++) await ob.enqueue(entry(`t${i}`))
  await ob.close()
  const file = path.join(dir, bodyFiles(dir)[0]!)
  const bytes = fs.readFileSync(file)
  fs.truncateSync(file, bytes.length - 10)
  await rejectsCode(open(dir), 'outbox_corrupt', file, 'truncated')
  fs.rmSync(file)
  await rejectsCode(open(dir), 'outbox_corrupt', file, '5 stored messages')
  fs.writeFileSync(file, bytes)
  const again = await open(dir)
  assert.is(again.all().length, 5, 'whole again once the file is restored')
  await again.close()
})

t('format 4: a body file whose list of messages (the meta block after the bodies) is damaged stops the open with outbox_corrupt, naming the file', async () => {
  const dir = tmpDir()
  const ob = await open(dir)
  for (let i = 0; i < 5; i++) await ob.enqueue(entry(`w${i}`))
  await ob.close()
  const file = path.join(dir, bodyFiles(dir)[0]!)
  const bytes = fs.readFileSync(file)
  const at = bytes.lastIndexOf('w3') // the id of w3 in the meta block
  assert.ok(at > 5 * 208, 'the meta block follows the bodies')
  fs.writeFileSync(file, Buffer.concat([bytes.subarray(0, at), Buffer.from('v'), bytes.subarray(at + 1)]))
  await rejectsCode(open(dir), 'outbox_corrupt', file, 'damaged')
  fs.writeFileSync(file, bytes)
  const again = await open(dir)
  assert.equal(again.all().map((e) => e.id), ['w0', 'w1', 'w2', 'w3', 'w4'])
  await again.close()
})

t('a damaged body is held back with an outbox_corrupt warning, never sent as garbage; the others go on', async () => {
  const dir = tmpDir()
  const ob = await open(dir)
  for (let i = 0; i < 5; i++) await ob.enqueue(entry(`d${i}`))
  await ob.close()
  const file = path.join(dir, bodyFiles(dir)[0]!)
  const fd = fs.openSync(file, 'r+')
  fs.writeSync(fd, Buffer.from('X'), 0, 1, fs.readFileSync(file).indexOf('d2;d2;') + 50) // a byte inside the body of d2
  fs.closeSync(fd)
  const warnings: string[] = []
  const again = await open(dir, { warn: (m) => warnings.push(m) })
  assert.equal(again.head('ship1', 10).map((e) => e.id), ['d0', 'd1', 'd3', 'd4'])
  assert.is(again.get('d2'), undefined)
  assert.equal(again.all().map((e) => e.id), ['d0', 'd1', 'd3', 'd4'])
  assert.is(warnings.length, 1, 'reported once')
  assert.ok(warnings[0]!.startsWith('outbox_corrupt: ') && warnings[0]!.includes('d2') && warnings[0]!.includes(file), warnings[0])
  for (const e of again.all()) assert.equal(e.body, bodyOf(e.id, 200))
  await again.close()
})

t('body files no snapshot names (a crash before the snapshot was renamed) are deleted at open', async () => {
  const dir = tmpDir()
  const ob = await open(dir)
  await ob.enqueue(entry('k1'))
  await ob.close()
  const stray = path.join(dir, bodyFileName(999))
  fs.writeFileSync(stray, 'half a file')
  const again = await open(dir)
  assert.not.ok(fs.existsSync(stray))
  assert.equal(again.get('k1')?.body, bodyOf('k1', 200))
  await again.close()
})

t('afterBurst is called once the journal has been quiet for a second after a burst of a checkpoint or more', async () => {
  let calls = 0
  const ob = await open(tmpDir(), { checkpointBytes: 4096, afterBurst: () => { calls++ } })
  await Promise.all(Array.from({ length: 100 }, (_, i) => ob.enqueue(entry(`q${i}`))))
  assert.is(calls, 0)
  await new Promise((r) => setTimeout(r, 1300))
  assert.is(calls, 1)
  await ob.enqueue(entry('small'))
  await new Promise((r) => setTimeout(r, 1300))
  assert.is(calls, 1, 'not after a write smaller than a checkpoint')
  await ob.close()
})

t('afterBurst also comes when a trickle of writes is in flight at each once-a-second look (a hello a second met every look)', async () => {
  let calls = 0
  const ob = await open(tmpDir(), { checkpointBytes: 4096, afterBurst: () => { calls++ } })
  // The journal as a trickle on a one-second period leaves it: a batch in flight at each look a
  // second after the last, written by the time of a look soon after.
  const journal = (ob as unknown as { journal: object }).journal
  const real = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(journal), 'idle')!.get!
  let lastLook = 0
  Object.defineProperty(journal, 'idle', {
    get(): boolean {
      const now = Date.now()
      const soon = now - lastLook < 200
      lastLook = now
      return soon && (real.call(journal) as boolean)
    },
  })
  await Promise.all(Array.from({ length: 100 }, (_, i) => ob.enqueue(entry(`t${i}`))))
  for (let i = 0; i < 40 && calls === 0; i++) await new Promise((r) => setTimeout(r, 100))
  assert.is(calls, 1, 'afterBurst within 4 s of the burst')
  await ob.close()
})

t('a burst left in memory goes to the store after a quiet second (snapshot), then afterBurst', async () => {
  const dir = tmpDir()
  const order: string[] = []
  const ob = await open(dir, { checkpointBytes: 64 * 1024, afterBurst: () => order.push(`afterBurst at snapshot ${ob.stats().lastSnapshot}`) })
  // ~80 KiB: one checkpoint's snapshot during the burst may or may not run; what is left after it stays in memory.
  await Promise.all(Array.from({ length: 400 }, (_, i) => ob.enqueue(entry(`s${i}`))))
  await new Promise((r) => setTimeout(r, 2600))
  const st = ob.stats()
  assert.is(st.journalBytes, 0, 'nothing left to replay: the quiet second took a snapshot')
  assert.ok(st.lastSnapshot > 0)
  assert.equal(order, [`afterBurst at snapshot ${st.lastSnapshot}`], 'afterBurst once, after that snapshot')
  assert.is(ob.stats().count, 400)
  await ob.close()
  const again = await open(dir)
  assert.is(again.stats().recovery.replayedRecords, 0)
  for (let i = 0; i < 400; i += 37) assert.equal(again.get(`s${i}`)?.body, bodyOf(`s${i}`, 200))
  await again.close()
})

const OLD_COLUMNS = 'seq, id, dest, body, createdAt, expiresAt, attempts, nextAt'

t('keepOldFormat: snapshots stay in format 1 (bodies in sql.js) that an outpost before body files reads', async () => {
  const dir = tmpDir()
  const ob = await open(dir, { keepOldFormat: true })
  for (let i = 0; i < 50; i++) await ob.enqueue(entry(`o${i}`, 100 + i))
  await ob.remove('o7')
  await ob.checkpoint()
  assert.is(ob.format, 1)
  assert.equal(bodyFiles(dir), [])
  await ob.enqueue(entry('late'))
  await ob.close()
  // What the previous binary runs at open and to read its rows, word for word.
  const rows = await snapshotRows(dir, `SELECT ${OLD_COLUMNS} FROM outbox ORDER BY seq`)
  assert.is(rows.length, 50)
  assert.not.ok(rows.some((r) => r[1] === 'o7'))
  for (const r of rows) assert.equal(r[3], bodyOf(String(r[1]), String(r[1]) === 'late' ? 200 : 100 + Number(String(r[1]).slice(1))))
  assert.equal(await snapshotRows(dir, 'PRAGMA user_version'), [[0]])
  // Reopened still under keepOldFormat: the same.
  const again = await open(dir, { keepOldFormat: true })
  assert.is(again.format, 1)
  assert.equal(again.get('o3')?.body, bodyOf('o3', 103))
  await again.close()
})

t('useNewFormat: the next snapshot moves a format-1 store to records in body files (format 4); without keepOldFormat it happens at open', async () => {
  const dir = tmpDir()
  const ob = await open(dir, { keepOldFormat: true })
  for (let i = 0; i < 30; i++) await ob.enqueue(entry(`n${i}`, 300))
  await ob.checkpoint()
  assert.is(ob.format, 1)
  ob.useNewFormat()
  await ob.enqueue(entry('n30', 300))
  await ob.checkpoint()
  assert.is(ob.format, 4)
  assert.is(bodyFiles(dir).length, 1)
  assert.equal(await snapshotRows(dir, 'SELECT count(*), sum(records) FROM waiting_files'), [[1, 31]])
  assert.equal(await snapshotRows(dir, 'PRAGMA user_version'), [[4]])
  for (let i = 0; i <= 30; i++) assert.equal(ob.get(`n${i}`)?.body, bodyOf(`n${i}`, 300))
  await ob.close()
  // A format-4 store stays in format 4 under keepOldFormat (its previous binary reads it).
  const again = await open(dir, { keepOldFormat: true })
  assert.is(again.format, 4)
  assert.is(again.stats().count, 31)
  await again.close()

  const old = tmpDir()
  const first = await open(old, { keepOldFormat: true })
  await first.enqueue(entry('m1'))
  await first.close()
  const migrated = await open(old)
  assert.is(migrated.format, 4)
  assert.equal(migrated.get('m1')?.body, bodyOf('m1', 200))
  await migrated.close()
})

t('a store in a format newer than this outpost reads is refused with outbox_format, and left as it is', async () => {
  const dir = tmpDir()
  const ob = await open(dir)
  await ob.enqueue(entry('f1'))
  await ob.close()
  const SQL = await loadSqlJs()
  const snap = path.join(dir, fs.readdirSync(dir).filter((f) => f.startsWith('snapshot-') && f.endsWith('.db')).sort().at(-1)!)
  const db = new SQL.Database(fs.readFileSync(snap))
  db.exec('PRAGMA user_version = 5')
  const bytes = db.export()
  fs.writeFileSync(snap, bytes)
  // With its checksum, as the newer outpost writes it.
  fs.writeFileSync(snap.replace(/\.db$/, '.sum'), `sha256 ${createHash('sha256').update(bytes).digest('hex')} ${bytes.length}\n`)
  db.close()
  const before = fs.readFileSync(snap)
  await rejectsCode(open(dir), 'outbox_format')
  assert.equal(fs.readFileSync(snap), before)
})

t.run()
