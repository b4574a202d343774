/**
 * reply.console: a reply sink that prints `[<node that ran the method>] <output>` (with the
 * error line and stderr as reply.file writes them) to standard output, or to the writer a
 * test installs with setConsoleWriter.
 */
import type { MethodContext, MethodResult, UnaryMethod } from '../src/method'
import { replyContent } from './reply-file'

export type ConsoleWriter = (text: string) => void

const stdoutWriter: ConsoleWriter = (text) => { process.stdout.write(text) }
let writer: ConsoleWriter = stdoutWriter

/** Send reply.console output to `fn` (undefined: back to standard output); returns the previous writer. */
export function setConsoleWriter(fn: ConsoleWriter | undefined): ConsoleWriter {
  const previous = writer
  writer = fn ?? stdoutWriter
  return previous
}

/** The text reply.console prints for a reply: one prefix, always ending with a newline. */
export function consoleText(ctx: MethodContext): string {
  const body = replyContent(ctx.env).toString('utf8')
  return `[${ctx.env.fromNode}] ${body}${body.endsWith('\n') ? '' : '\n'}`
}

export default {
  name: 'reply.console',
  aliases: ['REQToConsole'],
  sink: true,
  kind: 'unary',
  summary: "Print a reply on this node's standard output, prefixed with the node that sent it.",
  async run(ctx: MethodContext): Promise<MethodResult> {
    writer(consoleText(ctx))
    return {}
  },
} satisfies UnaryMethod
