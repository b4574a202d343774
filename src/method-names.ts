/**
 * The native method names of SPEC §5 and the names accepted for them (steward's `REQ…`
 * names and BasicAgent's `sync.bash`). The envelope maps an alias to its native name on
 * input, so the rest of outpost only ever sees native names.
 */
export const METHOD_ALIASES = {
  'cli.run': ['REQCliCommand', 'REQnCliCommand', 'sync.bash'],
  'cli.stream': ['REQCliCommandCont', 'REQnCliCommandCont'],
  'cli.named': [],
  'file.tail': ['REQTailFile'],
  'http.get': ['REQHttpGet'],
  'node.hello': ['REQHello'],
  'node.ping': ['REQPing'],
  'node.pong': ['REQPong'],
  'info.kernel': ['getinfo.kernel'],
  'info.os': [],
  'info.users': ['getinfo.users'],
  'info.system': [],
  'reply.console': ['REQToConsole'],
  'reply.file': ['REQToFile'],
  'reply.file.append': ['REQToFileAppend'],
  'error.log': ['REQErrorLog'],
  'op.list': ['REQOpProcessList'],
  'op.start': ['REQOpProcessStart'],
  'op.stop': ['REQOpProcessStop'],
  'op.cancel': ['REQOpCommand'],
  'agent.upgrade': [],
  'config.get': [],
  'config.set': [],
  'config.deploy': [],
  'config.rollback': [],
  'agent.restart': [],
} as const satisfies Record<string, readonly string[]>

export type MethodName = keyof typeof METHOD_ALIASES

const aliasToNative = new Map<string, MethodName>()
for (const [native, aliases] of Object.entries(METHOD_ALIASES) as [MethodName, readonly string[]][]) {
  aliasToNative.set(native, native)
  for (const alias of aliases) aliasToNative.set(alias, native)
}

/** The native name for a method name or alias; undefined when outpost does not know it. */
export function nativeMethodName(name: string): MethodName | undefined {
  return aliasToNative.get(name)
}

/** Method names with a reserved meaning on the wire, never dispatched to a method module. */
export const ACK_METHOD = 'ack'
