/** One figure of `npm run bench`: outpost's value and the baseline measured in the same run. */
export interface BenchResult {
  name: string
  value: number
  unit: string
  baseline: number | null
  ratio: number | null
  note?: string
}
