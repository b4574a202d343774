/**
 * Text that came from a peer (a hello's version, an error frame, a node's log line) written
 * into a line-oriented log: its control characters are escaped, so a newline in it cannot
 * start a line of its own (forged as another node's, or as the hub's own), and terminal
 * escapes (ESC, and the C1 controls such as CSI U+009B and NEL U+0085) do not reach a reader's
 * terminal. The logger applies it to a text line's message and to each of its fields.
 */
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029]/
const EVERY = new RegExp(CONTROL.source, 'g')

export function oneLine(text: string): string {
  if (!CONTROL.test(text)) return text
  return text.replace(EVERY, (c) => c === '\n' ? '\\n' : c === '\r' ? '\\r' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}
