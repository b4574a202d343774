/**
 * The command `outpost up` tells its user to type in another terminal: one that works as
 * printed from the folder it names. `npx outpost` finds the CLI only inside the checkout it
 * comes from (elsewhere npx asks the npm registry for a package of that name), so outside it,
 * and from a single binary, the hint says `outpost`; and `--config FILE` is part of it when
 * the lookup from that folder (`$OUTPOST_CONFIG`, `$CONFIG`, ./outpost.yaml) would not find the
 * file `up` runs from.
 */
import fs from 'node:fs'
import path from 'node:path'
import { resolveConfigPath } from '../config'
import { isPackaged } from '../upgrade'

export interface HintFrom {
  cwd: string
  env: NodeJS.ProcessEnv
  /** The config file `up` runs from (absolute). */
  file: string
  /** The script node runs (process.argv[1]): bin/outpost.cjs of a checkout, or a link to it. */
  script?: string | undefined
  packaged?: boolean
}

/** Whether `npx outpost` typed in `cwd` runs this CLI: the script is bin/outpost.cjs of an outpost checkout that holds cwd. */
function inCheckout(cwd: string, script: string | undefined): boolean {
  if (script === undefined) return false
  try {
    const root = path.dirname(path.dirname(fs.realpathSync(script)))
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { name?: unknown; bin?: unknown }
    if (pkg.name !== 'outpost') return false
    const rel = path.relative(root, fs.realpathSync(cwd))
    return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))
  } catch {
    return false
  }
}

const quote = (s: string): string => /^[\w./:@%+=,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`

/** `npx outpost` or `outpost`, then `--config FILE` when the lookup from cwd would miss it, then args. */
export function cliHint(from: HintFrom, args: string): string {
  const packaged = from.packaged ?? isPackaged()
  const base = !packaged && inCheckout(from.cwd, from.script ?? process.argv[1]) ? 'npx outpost' : 'outpost'
  const found = resolveConfigPath({ env: from.env, cwd: from.cwd }).path
  if (path.resolve(found) === path.resolve(from.file)) return `${base} ${args}`
  const rel = path.relative(from.cwd, from.file)
  const shown = rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : from.file
  const [command, ...rest] = args.split(' ')
  return `${base} ${command!} --config ${quote(shown)} ${rest.join(' ')}`
}
