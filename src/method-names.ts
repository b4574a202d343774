/**
 * Method names: each method module declares its native name and its aliases (methods/*.ts);
 * a node maps an alias it knows to the native name when a message is submitted, and the
 * receiver maps what it knows again, so a name only newer nodes have still reaches them.
 */

/** Method names with a reserved meaning on the wire, never dispatched to a method module. */
export const ACK_METHOD = 'ack'

/** What a reply runs on the requester when the request names no replyMethod. */
export const DEFAULT_REPLY_METHOD = 'reply.file.append'

/** Native names by name and by alias, for a registry of methods. */
export function nameIndex(methods: Iterable<{ name: string; aliases?: readonly string[] }>): ReadonlyMap<string, string> {
  const index = new Map<string, string>()
  for (const m of methods) {
    index.set(m.name, m.name)
    for (const alias of m.aliases ?? []) index.set(alias, m.name)
  }
  return index
}
