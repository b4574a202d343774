/**
 * Outcomes for messages the journal lost to damage. The store finds the damage at start-up
 * (store/store-files.ts: a stretch that fails its check, with good records after it) and reads
 * what it can of the first record in it; the node then gives each lost message its one outcome:
 *
 *   a request of ours, not delivered     ─▶ an error reply to ourselves (its reply file), like a give-up
 *   a reply of ours, not delivered       ─▶ an error reply to the requester in its place
 *   a message received here, not yet run ─▶ an error reply to its sender (it had its ACK; it will not run)
 *   a reply with its run's end           ─▶ nothing here: the run shows as interrupted (dispatcher.resume)
 *   unreadable, or an event              ─▶ the report only
 *
 * Every damaged stretch is in the report: one error.log to central, code outbox_corrupt.
 */
import { DEFAULT_REPLY_METHOD } from './method-names'
import { replyTo, undeliveredReply } from './reply'
import { messageOf, OP_INBOX_ADD } from './store/outbox-ops'
import { describeDamage, type JournalDamage } from './store/store-files'
import { decode, type Envelope } from './wire/envelope'

export interface LostOutcomes {
  /**
   * Error replies for requests of this node: handed to its own dispatcher (reply files). The
   * request's own record (what authorises a reply to it) may have been in the damaged record
   * too: `request` says what to record again first.
   */
  local: { reply: Envelope; request: { id: string; dest: string; replyMethod: string } }[]
  /** Error replies for other nodes: queued like any reply. */
  remote: Envelope[]
  /** Ids of this node's own requests now answered: later replies to them are dropped. */
  givenUp: string[]
  /** One message for the operator naming every damaged stretch. */
  report: string
}

/** Most damaged stretches named one by one in the report; the rest are counted. */
const REPORT_MAX = 5

export function lostOutcomes(damaged: JournalDamage[], self: string, newId: () => string, now: number): LostOutcomes {
  const out: LostOutcomes = { local: [], remote: [], givenUp: [], report: '' }
  for (const d of damaged) {
    const op = d.op
    if (d.settled || op === undefined) continue
    const error = { code: 'outbox_corrupt', message: `${self}: ${describeDamage(d)}` }
    const m = messageOf(op)
    if (m !== undefined && m.doneId === undefined) {
      const env = envelopeOf(m.body, m.id)
      if (env === undefined || env.ackTimeout === 0) continue
      if (env.inReplyTo === undefined) {
        out.local.push({ reply: undeliveredReply(env, error, newId(), now), request: { id: env.id, dest: env.toNode, replyMethod: env.replyMethod ?? DEFAULT_REPLY_METHOD } })
        out.givenUp.push(env.id)
      } else {
        // The requester waits on this reply: an error reply takes its place.
        const { data: _data, stderr: _stderr, ...rest } = env
        out.remote.push({ ...rest, id: newId(), createdAt: now, error, final: true })
      }
    } else if (op[0] === OP_INBOX_ADD) {
      const env = envelopeOf(op[4], op[1])
      const req = env ?? { id: op[1], fromNode: op[2], toNode: self, method: '', replyMethod: DEFAULT_REPLY_METHOD, createdAt: op[3] } as Envelope
      if (req.ackTimeout === 0) continue
      out.remote.push(replyTo(req, { error }, { self, id: newId(), now }))
    }
  }
  const lines = damaged.slice(0, REPORT_MAX).map(describeDamage)
  if (damaged.length > REPORT_MAX) lines.push(`and ${damaged.length - REPORT_MAX} more damaged stretches`)
  out.report = `${self}: the outbox journal was damaged (not a torn write: good records follow it); the good records were kept. ${lines.join('; ')}`
  return out
}

/** The envelope a damaged record held, when it still decodes and names the id the record does. */
function envelopeOf(body: Uint8Array, id: string): Envelope | undefined {
  try {
    const env = decode(body)
    return env.id === id ? env : undefined
  } catch {
    return undefined
  }
}
