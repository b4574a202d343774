/** One alternated pair of bench/outbox.ts's dedup-set snapshot rounds, printed as JSON lines (a quick look without the whole outbox suite). */
import { seenSnapshots } from './outbox'

async function main(): Promise<void> {
  const pairs = Number(process.argv[2] ?? 1)
  for (let r = 0; r < pairs; r++) {
    for (const layout of ['rows', 'runs'] as const) {
      const x = await seenSnapshots(layout)
      console.log(JSON.stringify({ layout, cpuUsPerKey: x.cpu.map((c) => Math.round(c / 800) / 100), wallMs: x.ms.map(Math.round), restartMs: { crash: Math.round(x.restart.crash), clean: Math.round(x.restart.clean) } }))
    }
  }
}

void main()
