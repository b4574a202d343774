import { main } from './cli'

void main({ argv: process.argv.slice(2), env: process.env, cwd: process.cwd(), stdout: process.stdout, stderr: process.stderr })
  .then((code) => { process.exitCode = code })
