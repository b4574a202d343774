/**
 * Messages accepted but not on disk yet: their ids (a second enqueue of one is refused while it
 * is being written) and their bytes (they count against maxBytes already). A commit settles
 * each (the index has it then); a failed write lets go of what it held.
 *
 *   hold (checked as a whole: outbox_full, outbox_duplicate) ─▶ journal ─▶ settled (per record)
 *                                                                     └▶ release (write failed)
 */
import { OutpostError } from '../errors'
import type { OutboxIndex } from './outbox-index'

interface Held {
  id: string
  body: Uint8Array
}

export class PendingMessages {
  /** Bytes of messages held and not yet on disk (the committed ones are the index's). */
  bytes = 0
  private readonly ids = new Set<string>()

  constructor(private readonly index: Pick<OutboxIndex, 'bytes' | 'has'>, private readonly maxBytes: number) {}

  /** Take room and ids for `inputs`, or refuse them all (outbox_full, outbox_duplicate) holding nothing. */
  hold(inputs: readonly Held[]): void {
    let size = 0
    for (const input of inputs) size += input.body.length
    const held = this.index.bytes + this.bytes
    if (held + size > this.maxBytes) {
      const what = inputs.length === 1 ? `message ${inputs[0]!.id} of ${size} bytes` : `${inputs.length} messages of ${size} bytes`
      throw new OutpostError('outbox_full', `outbox: full (${held} of ${this.maxBytes} bytes held; delivery.maxOutboxBytes); ${what} not accepted`)
    }
    let n = 0
    for (; n < inputs.length; n++) {
      const id = inputs[n]!.id
      if (this.ids.has(id) || this.index.has(id)) break
      this.ids.add(id)
    }
    if (n < inputs.length) {
      for (let k = 0; k < n; k++) this.ids.delete(inputs[k]!.id)
      throw new OutpostError('outbox_duplicate', `outbox: message ${inputs[n]!.id} is already queued`)
    }
    this.bytes += size
  }

  /** A held message is on disk and in the index. */
  settled(id: string, size: number): void {
    this.ids.delete(id)
    this.bytes -= size
  }

  /** Not written after all: what `inputs` still hold is let go (one already on disk is settled, not held). */
  release(inputs: readonly Held[]): void {
    for (const input of inputs) if (this.ids.delete(input.id)) this.bytes -= input.body.length
  }
}
