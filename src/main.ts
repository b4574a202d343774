import { main } from './cli'

// A reader that goes away (`outpost send --json | head -1`) ends the command quietly, as
// SIGPIPE ends other tools, instead of a stack trace for the EPIPE of the next write.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0)
  throw e
})

void main({ argv: process.argv.slice(2), env: process.env, cwd: process.cwd(), stdout: process.stdout, stderr: process.stderr })
  .then((code) => { process.exitCode = code })
