/**
 * The static method registry: every method module, listed by import so the bundler sees them
 * all. Tests can build their own map from the same modules.
 */
import type { Method } from '../src/method'
import type { MethodName } from '../src/method-names'
import agentUpgrade from './agent-upgrade'
import cliRun from './cli-run'
import errorLog from './error-log'
import { nodePing, nodePong } from './node-ping'
import replyConsole from './reply-console'
import { replyFile, replyFileAppend } from './reply-file'

function registry(methods: readonly Method[]): ReadonlyMap<MethodName, Method> {
  const map = new Map<MethodName, Method>()
  for (const m of methods) {
    if (map.has(m.name)) throw new Error(`methods/index.ts: ${m.name} is listed twice`)
    map.set(m.name, m)
  }
  return map
}

export const METHODS: ReadonlyMap<MethodName, Method> = registry([
  cliRun,
  replyFile,
  replyFileAppend,
  replyConsole,
  errorLog,
  nodePing,
  nodePong,
  agentUpgrade,
])
