/**
 * The durable records of transfers: <dataDir>/transfers/{in,out}/<id>.json, each replaced
 * atomically (write tmp, fsync, rename, fsync the directory), so a restart of either side finds
 * the state it left: the sender its transfers to resume, the receiver which chunks it holds.
 */
import fs from 'node:fs'
import path from 'node:path'

export type Side = 'in' | 'out'

export class Records<R extends { id: string }> {
  readonly dir: string
  constructor(dataDir: string, side: Side) {
    this.dir = path.join(dataDir, 'transfers', side)
  }

  private file(id: string): string {
    if (!/^[0-9A-Za-z_-]{1,64}$/.test(id)) throw new Error(`transfer id ${JSON.stringify(id)} is not a valid id`)
    return path.join(this.dir, `${id}.json`)
  }

  /** Every record left here (unreadable ones are skipped). */
  all(): R[] {
    let names: string[]
    try { names = fs.readdirSync(this.dir) } catch { return [] }
    const out: R[] = []
    for (const n of names) {
      if (!n.endsWith('.json')) continue
      try { out.push(JSON.parse(fs.readFileSync(path.join(this.dir, n), 'utf8')) as R) } catch { /* torn or foreign: skipped */ }
    }
    return out
  }

  private readonly saving = new Map<string, { done: Promise<void>; again: R | undefined }>()

  /**
   * Write `rec`, after the write of it in flight if any; writes asked for meanwhile collapse
   * into one of the latest state. Resolves once a write that includes this state is on disk.
   */
  save(rec: R): Promise<void> {
    const cur = this.saving.get(rec.id)
    if (cur !== undefined) {
      cur.again = rec
      return cur.done
    }
    const slot: { done: Promise<void>; again: R | undefined } = { done: Promise.resolve(), again: undefined }
    slot.done = (async () => {
      let next: R | undefined = rec
      try {
        while (next !== undefined) {
          slot.again = undefined
          await this.write(JSON.parse(JSON.stringify(next)) as R)
          next = slot.again
        }
      } finally {
        this.saving.delete(rec.id)
      }
    })()
    this.saving.set(rec.id, slot)
    return slot.done
  }

  /** Resolves once no write is in flight (a close leaves none half done: no `.tmp` behind, the latest state on disk). */
  async settled(): Promise<void> {
    while (this.saving.size > 0) await Promise.allSettled([...this.saving.values()].map((s) => s.done))
  }

  private async write(rec: R): Promise<void> {
    const file = this.file(rec.id)
    await fs.promises.mkdir(this.dir, { recursive: true, mode: 0o700 })
    const tmp = `${file}.tmp`
    const h = await fs.promises.open(tmp, 'w', 0o600)
    try {
      await h.writeFile(JSON.stringify(rec))
      await h.datasync()
    } finally {
      await h.close()
    }
    await fs.promises.rename(tmp, file)
    const d = await fs.promises.open(this.dir, 'r')
    try { await d.sync() } finally { await d.close() }
  }

  async remove(id: string): Promise<void> {
    await this.saving.get(id)?.done.catch(() => {})
    fs.rmSync(this.file(id), { force: true })
  }
}
