/**
 * How the tcp transport (tcp.ts) puts messages on the connection: as frames per receiver, each
 * compressed when that pays, the write callback of the last one saying they all left.
 */
import type { Socket } from 'node:net'
import { abbreviate, writeFrame, type Frame } from '../src/wire/framing'
import { compressFrame, packFrames, type Outgoing } from '../src/wire/batch'

/** Writes `frames` (deflate: compressed when that pays); `written` with the last one's bytes. Returns the bytes written. */
export function writeFrames(sock: Socket, frames: readonly Frame[], deflate: boolean, debug: ((line: string) => void) | undefined, written: (() => void) | undefined): number {
  let wire = 0
  for (let k = 0; k < frames.length; k++) {
    const f = deflate ? compressFrame(frames[k]!, 'auto') : frames[k]!
    debug?.(`tcp → ${describe(f)}`)
    wire += writeFrame(sock, f, k === frames.length - 1 ? written : undefined)
  }
  return wire
}

/** Messages as frames: per receiver (in order), in as few as fit. */
export function framesOf(msgs: readonly (Outgoing & { to: string })[]): Frame[] {
  const byReceiver = new Map<string, Outgoing[]>()
  for (const m of msgs) {
    const list = byReceiver.get(m.to)
    if (list === undefined) byReceiver.set(m.to, [m])
    else list.push(m)
  }
  if (byReceiver.size === 1) return packFrames(msgs[0]!.to, msgs)
  return [...byReceiver].flatMap(([to, items]) => packFrames(to, items))
}

export function describe(f: Frame): string {
  switch (f.t) {
    case 'msg': return `msg ${f.id} ${f.from ?? ''}→${f.to} ${abbreviate(f.b)}`
    case 'part': return `part ${f.id} ${f.i + 1}/${f.n} → ${f.to} ${abbreviate(f.b)}`
    case 'batch': return `batch of ${f.ids.length} ${f.from ?? ''}→${f.to}: ${f.ids.join(' ')}`
    case 'zbatch': return `zbatch of ${f.ids.length} (${f.z.length} B) ${f.from ?? ''}→${f.to}: ${f.ids.join(' ')}`
    case 'acks': return `acks ${f.id} ${f.from ?? ''}→${f.to}: ${f.ids.join(' ')}`
    case 'hello': return `hello ${f.node}`
    default: return JSON.stringify(f)
  }
}

