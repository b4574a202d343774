/**
 * What a node does with the frames the hub sends it once welcomed, the same over TCP
 * (transports/tcp.ts) and in the hub's own process (src/hub-link.ts):
 *
 *   msg / acks / batch and inflated zbatch (each envelope) / reassembled parts ─▶ messages()
 *   nack / online / presence ─▶ events()
 *   a zbatch that does not inflate (or would past the frame limit) is dropped and logged
 *   online is echoed first (the hub then knows what follows is a resend from the oldest message)
 *   ping ─▶ pong; error ─▶ logged; anything else ─▶ ignored (a newer hub may send more)
 */
import type { AsyncQueue } from '../src/lib/async-queue'
import type { LogFn } from '../src/log'
import type { Inbound, TransportEvent } from '../src/transport'
import { inflateBatch } from '../src/wire/batch'
import type { BatchFrame, Frame } from '../src/wire/framing'
import type { Reassembler } from '../src/wire/reassembler'

export interface HubFrameTarget {
  inbound: AsyncQueue<Inbound>
  events: AsyncQueue<TransportEvent>
  reassembler: Reassembler
  log: LogFn
  /** A frame back to the hub. */
  send(f: Frame): void
  /** Copy a msg's bytes and a part's before it is kept (they may be views of a buffer the hub reuses). */
  copy: boolean
}

export function onHubFrame(f: Frame, to: HubFrameTarget): void {
  switch (f.t) {
    case 'zbatch': {
      let batch: BatchFrame
      try {
        batch = inflateBatch(f)
      } catch (err) {
        // Its envelopes are not ACKed: their sender tries again (and is the one to fix).
        to.log('warn', `dropped a compressed batch of ${f.ids.length} from ${f.from ?? 'unknown'}: ${(err as Error).message}`, { code: (err as { code?: string }).code })
        return
      }
      return onHubFrame(batch, { ...to, copy: false })
    }
    case 'msg':
    case 'acks': {
      const bytes = to.copy ? new Uint8Array(f.b) : f.b
      to.inbound.push(f.from === undefined ? { bytes } : { bytes, from: f.from })
      return
    }
    case 'batch':
      // In one tick: their receipts share a journal commit, their ACKs a batch frame back.
      for (const b of f.bs) {
        const bytes = to.copy ? new Uint8Array(b) : b
        to.inbound.push(f.from === undefined ? { bytes } : { bytes, from: f.from })
      }
      return
    case 'part': {
      let whole: Uint8Array | undefined
      try {
        // Kept until the last part comes: a view of a buffer the hub reuses must be copied now
        // (in the hub's process the hub reads every socket into one buffer, src/hub-read.ts).
        whole = to.reassembler.add(to.copy ? { ...f, b: new Uint8Array(f.b) } : f)
      } catch (err) {
        to.log('warn', `dropped message ${f.id}: ${(err as Error).message}`)
        return
      }
      if (whole) to.inbound.push(f.from === undefined ? { bytes: whole } : { bytes: whole, from: f.from })
      return
    }
    case 'nack':
      to.events.push({ type: 'nack', id: f.id, to: f.to, reason: f.reason })
      return
    case 'online':
      to.send({ t: 'online', node: f.node })
      to.events.push({ type: 'online', node: f.node })
      return
    case 'presence':
      to.events.push({ type: 'presence', online: f.online, offline: f.offline })
      return
    case 'ping':
      to.send({ t: 'pong' })
      return
    case 'pong':
      return
    case 'error':
      to.log('warn', `hub reported ${f.code}: ${f.message}`)
      return
    default:
      to.log('debug', `ignored ${f.t} frame`)
  }
}
