/**
 * Session frames: the live channel's units, carried as event envelopes (ackTimeout 0) that are
 * published straight on the transport. They never enter the outbox or the journal; the channel
 * (channel.ts) makes them reliable for as long as the session lives.
 *
 *   methodArgs  [sid, type, ...]   sid: the session's random id; type below
 *   seq         sequenced types only, 0, 1, 2, … per direction
 *   data        bytes of a `data` frame
 *   exitCode    of an `exit` frame; error: of a `close` frame
 *
 *   sequenced:   ready (first frame of the side that runs the program) · data · resize ROWS COLS
 *                · eof · exit
 *   unsequenced: ack NEXT CONSUMED (the next seq expected, bytes consumed so far) · close
 */
import type { Envelope, EnvelopeError } from '../wire/envelope'

/** The method name session frames travel under (never a method run by the dispatcher). */
export const FRAME_METHOD = 'session.frame'

export type SeqType = 'ready' | 'data' | 'resize' | 'eof' | 'exit'

export type Frame =
  | { type: SeqType; sid: string; seq: number; data?: Uint8Array; args: string[]; exitCode?: number }
  | { type: 'ack'; sid: string; next: number; consumed: number }
  | { type: 'close'; sid: string; error?: EnvelopeError }

/**
 * The two ends of a session have their own keys: the asking side's is the session id, the
 * running side's the id with `.r`. A frame names the key of the end it is for (so a node can
 * hold both ends of a session with itself).
 */
export function counterpart(key: string): string {
  return key.endsWith('.r') ? key.slice(0, -2) : `${key}.r`
}

const SEQ_TYPES = new Set<string>(['ready', 'data', 'resize', 'eof', 'exit'])

/** The frame an envelope carries, or undefined when it is not a well-formed frame. */
export function parseFrame(env: Envelope): Frame | undefined {
  const [sid, type, ...rest] = env.methodArgs ?? []
  if (sid === undefined || sid === '' || type === undefined) return undefined
  if (SEQ_TYPES.has(type)) {
    if (env.seq === undefined) return undefined
    const data = env.data === undefined ? undefined : typeof env.data === 'string' ? Buffer.from(env.data) : env.data
    return { type: type as SeqType, sid, seq: env.seq, args: rest, ...(data !== undefined ? { data } : {}), ...(env.exitCode !== undefined ? { exitCode: env.exitCode } : {}) }
  }
  if (type === 'ack') {
    const next = Number(rest[0])
    const consumed = Number(rest[1])
    if (!Number.isSafeInteger(next) || !Number.isSafeInteger(consumed)) return undefined
    return { type, sid, next, consumed }
  }
  if (type === 'close') return { type, sid, ...(env.error !== undefined ? { error: env.error } : {}) }
  return undefined
}

/** The envelope fields of a frame (id, toNode, fromNode, createdAt are the sender's to add). */
export function frameFields(f: Frame): Pick<Envelope, 'methodArgs' | 'seq' | 'data' | 'exitCode' | 'error'> {
  switch (f.type) {
    case 'ack': return { methodArgs: [f.sid, 'ack', String(f.next), String(f.consumed)] }
    case 'close': return { methodArgs: [f.sid, 'close'], ...(f.error !== undefined ? { error: f.error } : {}) }
    default: return {
      methodArgs: [f.sid, f.type, ...f.args], seq: f.seq,
      ...(f.data !== undefined ? { data: f.data } : {}), ...(f.exitCode !== undefined ? { exitCode: f.exitCode } : {}),
    }
  }
}
