/**
 * The static method registry: every method module, listed by import so the bundler sees them
 * all. Tests can build their own map from the same modules. A new method is one file beside
 * this one and one line in the list below: its names, aliases and traits are its own.
 */
import type { Method } from '../src/method'
import { nameIndex } from '../src/method-names'
import agentRestart from './agent-restart'
import agentUpgrade from './agent-upgrade'
import configDeploy from './config-deploy'
import configGet from './config-get'
import configRollback from './config-rollback'
import configSet from './config-set'
import cliNamed from './cli-named'
import cliRun from './cli-run'
import cliStream from './cli-stream'
import errorLog from './error-log'
import fileTail from './file-tail'
import fileGet from './file-get'
import { fileChunk, fileCommit, filePut, fileReply } from './file-put'
import httpGet from './http-get'
import { infoKernel, infoOs, infoSystem, infoUsers } from './info'
import { nodePing, nodePong } from './node-ping'
import { opCancel, opList, opStart, opStop } from './op'
import replyConsole from './reply-console'
import { replyFile, replyFileAppend } from './reply-file'
import replyJob from './reply-job'
import replyNone from './reply-none'
import sessionOpen from './session-open'
import tunnelOpen from './tunnel-open'
import tunnelListen from './tunnel-listen'

function registry(methods: readonly Method[]): ReadonlyMap<string, Method> {
  const map = new Map<string, Method>()
  for (const m of methods) {
    if (map.has(m.name)) throw new Error(`methods/index.ts: ${m.name} is listed twice`)
    map.set(m.name, m)
  }
  return map
}

export const METHODS: ReadonlyMap<string, Method> = registry([
  cliRun,
  cliStream,
  fileTail,
  cliNamed,
  httpGet,
  infoKernel,
  infoOs,
  infoUsers,
  infoSystem,
  replyFile,
  replyFileAppend,
  replyConsole,
  replyJob,
  replyNone,
  errorLog,
  nodePing,
  nodePong,
  opList,
  opStart,
  opStop,
  opCancel,
  agentUpgrade,
  configGet,
  configSet,
  configDeploy,
  configRollback,
  agentRestart,
  filePut, fileChunk, fileCommit, fileReply, fileGet,
  sessionOpen,
  tunnelOpen,
  tunnelListen,
])

const NAMES = nameIndex(METHODS.values())

/** The native name of a method name or alias this outpost knows; undefined otherwise. */
export function nativeMethodName(name: string): string | undefined {
  return NAMES.get(name)
}
