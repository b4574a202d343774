/**
 * The outbox on a full disk: what settles messages already accepted (removals, receipts, runs,
 * replies) is still written, from the reserve, while new messages are refused with disk_full;
 * once space is freed the reserve is made again and new messages are accepted.
 *
 * The disk is a small tmpfs filled to its last byte when this runs as root and may mount. Else
 * the disk's edge is faked (this file only): while "full", a write that would grow a journal
 * file (segment, spare, reserve) fails with ENOSPC and the free space the outbox sees is 0.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Outbox, type OutboxOptions } from '../../src/store/outbox'
import { rejectsCode } from '../helpers'

const MIB = 1024 * 1024

interface SmallDisk {
  kind: 'tmpfs' | 'faked'
  dir: string
  /** Take every free byte. */
  fill(): void
  /** Give it back. */
  free(): void
  /** What the outbox is told about free space (the faked disk only). */
  options: Partial<OutboxOptions>
  close(): void
}

function tmpfsDisk(): SmallDisk | undefined {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-full-'))
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', dir], { encoding: 'utf8' })
  if (m.status !== 0) {
    fs.rmdirSync(dir)
    return undefined
  }
  const fillers: string[] = []
  return {
    kind: 'tmpfs', dir, options: {},
    fill() {
      const file = path.join(dir, `filler-${fillers.length}`)
      fillers.push(file)
      const fd = fs.openSync(file, 'w')
      const chunk = Buffer.alloc(64 * 1024)
      try {
        for (;;) fs.writeSync(fd, chunk)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err
      } finally {
        fs.closeSync(fd)
      }
      // What a partial chunk left: fill it a byte at a time.
      const small = fs.openSync(file, 'a')
      try {
        for (;;) fs.writeSync(small, Buffer.alloc(1))
      } catch { /* full to the last byte */ } finally {
        fs.closeSync(small)
      }
    },
    free() {
      for (const f of fillers.splice(0)) fs.rmSync(f)
    },
    close() {
      spawnSync('umount', ['-l', dir])
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** A write that would grow a journal file under `dir` fails with ENOSPC while `full`: fs.write and fs.writeSync patched. */
function fakedDisk(): SmallDisk {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-full-'))
  let full = false
  const writeSync = fs.writeSync
  const write = fs.write
  const grows = (fd: number, length: number, position: unknown): boolean => {
    if (!full) return false
    let file: string
    try { file = fs.readlinkSync(`/proc/self/fd/${fd}`) } catch { return false }
    if (!file.startsWith(dir) || !path.basename(file).startsWith('journal-')) return false
    const size = fs.fstatSync(fd).size
    return typeof position !== 'number' || position + length > size
  }
  const enospc = (): NodeJS.ErrnoException => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' })
  // `any`: fs.write and fs.writeSync have many overloads; these wrappers pass every form through.
  /* eslint-disable @typescript-eslint/no-explicit-any */
  ;(fs as any).writeSync = (fd: number, buf: any, offset?: any, length?: any, position?: any): number => {
    const len = typeof buf === 'string' ? Buffer.byteLength(buf) : typeof length === 'number' ? length : buf.length - (offset ?? 0)
    if (grows(fd, len, typeof buf === 'string' ? offset : position)) throw enospc()
    return (writeSync as any)(fd, buf, offset, length, position)
  }
  ;(fs as any).write = (fd: number, buf: any, offset: any, length: any, position: any, cb: any): void => {
    if (typeof buf !== 'string' && typeof cb === 'function' && grows(fd, length as number, position)) {
      process.nextTick(cb, enospc(), 0, buf)
      return
    }
    ;(write as any)(fd, buf, offset, length, position, cb)
  }
  /* eslint-enable @typescript-eslint/no-explicit-any */
  return {
    kind: 'faked', dir,
    options: { free: async () => (full ? 0 : 1024 * MIB) },
    fill() { full = true },
    free() { full = false },
    close() {
      fs.writeSync = writeSync
      fs.write = write
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

const body = (n: number): Uint8Array => new Uint8Array(n).fill(0x62)
const entry = (id: string, size: number) => ({ id, dest: 'ship1', body: body(size), createdAt: 1, expiresAt: 2 })

async function until(what: string, fn: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

test('outbox - on a full disk removals, receipts and replies are written from the reserve, new messages are refused, and all resumes once space is freed', async () => {
  const disk = tmpfsDisk() ?? fakedDisk()
  console.log(`  disk: ${disk.kind}`)
  const warnings: string[] = []
  const dir = path.join(disk.dir, 'outbox')
  const open = (): Promise<Outbox> => Outbox.open({ dir, maxBytes: 1024 * MIB, checkpointBytes: MIB, reserveBytes: MIB, warn: (m) => warnings.push(m), ...disk.options })
  let ob = await open()
  try {
    await until('the reserve', () => ob.stats().reserveBytes === MIB)
    assert.is(fs.statSync(path.join(dir, 'journal-reserve.dat')).size, MIB)
    const ids: string[] = []
    for (let i = 0; i < 20; i++) { ids.push(`a${i}`); await ob.enqueue(entry(`a${i}`, 1024)) }

    disk.fill()
    // The segment's preallocated room takes messages until it is used up; then the disk is full.
    let refused: unknown
    for (let i = 0; i < 5000 && refused === undefined; i++) {
      await ob.enqueue(entry(`b${i}`, 4096)).then(() => ids.push(`b${i}`), (err: unknown) => { refused = err })
    }
    assert.ok(refused !== undefined, 'a message was refused once the disk was full')
    await rejectsCode(Promise.reject(refused), 'disk_full', 'ENOSPC')
    // Whatever a failed write gave back is taken too: only the reserve is left.
    disk.fill()

    // Delivered messages leave the outbox: their removals are written.
    assert.is(ob.stats().count, ids.length)
    await Promise.all(ids.map((id) => ob.remove(id)))
    assert.is(ob.stats().count, 0, 'every removal was recorded')
    // Requests received, run and answered: receipts, runs and replies are written too.
    for (let i = 0; i < 10; i++) await ob.receive(`r${i}`, 'ship1', body(2048), { started: true })
    for (let i = 0; i < 5; i++) await ob.enqueueReply({ id: `reply${i}`, dest: 'ship1', body: body(2048), createdAt: 1, expiresAt: 2 }, `r${i}`)
    for (let i = 5; i < 10; i++) await ob.finishRun(`r${i}`)
    assert.equal(ob.inbox(), [], 'every inbox entry was closed')
    assert.is(ob.stats().count, 5, 'the replies wait for delivery')
    // New messages are refused meanwhile: settling earlier ones freed no space.
    assert.ok(ob.stats().diskFull, 'the outbox says the disk is full')
    await rejectsCode(ob.enqueue(entry('c1', 100)), 'disk_full', 'new messages are refused until space is freed')
    assert.is(warnings.filter((w) => w.includes('is full')).length, 1, warnings.join('\n'))

    // A restart on the full disk keeps what was recorded, and still refuses new messages.
    await ob.close()
    ob = await open()
    assert.is(ob.stats().count, 5)
    assert.ok(ob.hasSeen('r9'))
    assert.equal(ob.inbox(), [])
    await until('the restarted outbox to find the disk full', () => ob.stats().diskFull)
    await rejectsCode(ob.enqueue(entry('c2', 100)), 'disk_full')

    // Space comes back: the reserve is made again, then new messages are accepted.
    disk.free()
    await until('new messages to be accepted again', () => !ob.stats().diskFull)
    assert.is(ob.stats().reserveBytes, MIB)
    assert.is(fs.statSync(path.join(dir, 'journal-reserve.dat')).size, MIB)
    await ob.enqueue(entry('d0', 100))
    assert.is(ob.stats().count, 6)
    assert.ok(warnings.some((w) => w.includes('new messages are accepted again')), warnings.join('\n'))
  } finally {
    try {
      await ob.close()
    } finally {
      disk.close()
    }
  }
})

test.run()
