/**
 * Cron expressions (schedules, upgrade.schedule), with cron-parser loaded on first use: it
 * brings luxon, ~350 KB of code that an agent without schedules never runs but would evaluate
 * at start-up (heap, and the ICU data luxon's time zones touch).
 */
import type { CronExpression, CronExpressionParser } from 'cron-parser'

export type { CronExpression }

let parser: typeof CronExpressionParser | undefined

/** CronExpressionParser.parse; throws on an invalid expression. */
export function cronExpression(expr: string, options?: Parameters<typeof CronExpressionParser.parse>[1]): CronExpression {
  parser ??= (require('cron-parser') as typeof import('cron-parser')).CronExpressionParser
  return parser.parse(expr, options)
}
