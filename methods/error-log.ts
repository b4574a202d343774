/**
 * error.log: the central error sink. Each call appends one line
 * `<ISO time> <fromNode> <code> <message>` to <dataDir>/errors.log and logs it as a warning.
 * A report from this node itself was logged where it happened (a ttl that ran out, a refused
 * reply): here it only goes to the file, so the log says it once.
 */
import fs from 'node:fs'
import path from 'node:path'
import { OutpostError } from '../src/errors'
import type { MethodContext, MethodResult, UnaryMethod } from '../src/method'
import { dataText } from '../src/wire/envelope'

export const ERROR_LOG_FILE = 'errors.log'

/** One line per report: newlines inside a message are written as `\n`. */
function oneLine(text: string): string {
  return text.replace(/\r?\n/g, '\\n')
}

export function errorLogLine(ctx: MethodContext, now: Date = new Date()): string {
  const { env } = ctx
  const code = env.error?.code ?? 'error'
  const message = env.error?.message ?? dataText(env.data)
  return `${now.toISOString()} ${env.fromNode} ${oneLine(code)} ${oneLine(message.replace(/\n$/, ''))}`
}

export default {
  name: 'error.log',
  aliases: ['REQErrorLog'],
  sink: true,
  kind: 'unary',
  summary: 'Record an error report from a node in <dataDir>/errors.log.',
  async run(ctx: MethodContext): Promise<MethodResult> {
    const line = errorLogLine(ctx)
    const file = path.join(ctx.dataDir, ERROR_LOG_FILE)
    const { O_WRONLY, O_CREAT, O_APPEND, O_NOFOLLOW } = fs.constants
    // A nearly full disk keeps its last room for the outbox: the report then goes to the log
    // only (the disk guard said once that errors.log is not written meanwhile).
    if (ctx.disk?.allow(Buffer.byteLength(line) + 1) !== false) {
      try {
        await fs.promises.mkdir(ctx.dataDir, { recursive: true })
        // O_APPEND: one write per line, so concurrent reports never interleave inside a line.
        await fs.promises.appendFile(file, `${line}\n`, { flag: O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, mode: 0o644 })
      } catch (err) {
        throw new OutpostError('io', `error.log: cannot append to ${file}: ${(err as Error).message}`, { cause: err })
      }
    }
    ctx.log(ctx.env.fromNode === ctx.node ? 'debug' : 'warn', line)
    return {}
  },
} satisfies UnaryMethod
