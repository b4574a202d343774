/**
 * The console's Jobs view and the Run view's rollout options, in a real Chromium against a real
 * cluster of processes (a hub, central with api.http, ship1-ship3 labelled role=db): a job by
 * selector in batches, a failing canary, cancel from the page, the job list, the live stream
 * down. Screenshots go to test-output/console/ (jobs*.png, job*.png).
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { BrowserContext, Locator, Page } from 'playwright-core'
import { Cluster, freePort } from '../fixtures/cluster'
import { launchChromium, shotPath, type Chromium } from '../fixtures/chromium'
import { configure } from '../fixtures/configure'

const TOKEN = `console-token-${Math.random().toString(36).slice(2)}`
const SHIPS = ['ship1', 'ship2', 'ship3']
let c: Cluster
let base = ''
let chrome: Chromium
let context: BrowserContext
let page: Page
const pageErrors: string[] = []

interface ApiJob { id: string; status: string; options: Record<string, unknown>; counts: Record<string, number>; nodes: { name: string; state: string; sentAt?: number; endedAt?: number }[] }

async function getJob(id: string): Promise<ApiJob> {
  const res = await fetch(`${base}/v1/jobs/${id}`, { headers: { authorization: `Bearer ${TOKEN}` } })
  return ((await res.json()) as { job: ApiJob }).job
}

test.before(async () => {
  c = await Cluster.create(SHIPS)
  const port = await freePort()
  base = `http://127.0.0.1:${port}`
  configure(c, 'central', { api: { http: `127.0.0.1:${port}`, token: TOKEN } })
  for (const n of SHIPS) configure(c, n, { node: { name: n, central: 'central', labels: { role: 'db' } } })
  await c.startHub()
  await Promise.all([c.start('central'), ...SHIPS.map((n) => c.start(n))])
  chrome = await launchChromium()
  context = await chrome.browser.newContext({ viewport: { width: 1100, height: 700 }, colorScheme: 'light' })
  page = await context.newPage()
  page.setDefaultTimeout(20_000)
  // The 401 before sign-in, the refused event stream of the last test and the CSRF refusal are expected; anything else is not.
  page.on('console', (m) => { if (m.type() === 'error' && !/401|Unauthorized|net::ERR_FAILED|status of 403/.test(m.text())) pageErrors.push(m.text()) })
  page.on('pageerror', (e) => pageErrors.push(e.message))
  await page.goto(`${base}/`)
  await page.fill('#token', TOKEN)
  await page.click('button[type=submit]')
  for (const n of SHIPS) await page.locator(`tr[data-node="${n}"] .badge`).filter({ hasText: 'online' }).waitFor()
})

test.after(async () => {
  await chrome?.close()
  await c?.destroy()
})

/** Fill the Run form (selector role=db, cli.run) with rollout options and submit; the run's job matrix. */
async function runJob(args: string, rollout: { batch?: string; maxErrors?: string; canary?: string; ttl?: string }, method = 'cli.run'): Promise<{ matrix: Locator; id: string }> {
  await page.goto(`${base}/#/run`)
  await page.fill('#run-selector', 'role=db')
  await page.locator('[data-matches]').filter({ hasText: 'matches 3 nodes' }).waitFor()
  await page.fill('#method', method)
  await page.fill('#args', args)
  await page.fill('#batch', rollout.batch ?? '')
  await page.fill('#max-errors', rollout.maxErrors ?? '')
  await page.fill('#canary', rollout.canary ?? '')
  await page.fill('#ttl', rollout.ttl ?? '')
  const before = await page.locator('article.run').count()
  await page.click('#run-button')
  await page.locator('article.run').nth(before).waitFor()
  const article = page.locator('article.run').first()
  const id = await article.getAttribute('data-job')
  assert.ok(id !== null && /^[0-9A-Z]{26}$/.test(id), `the run is a job (${String(id)})`)
  const matrix = article.locator('.job')
  await matrix.waitFor()
  return { matrix, id }
}

function state(matrix: Locator, node: string): Locator {
  return matrix.locator(`tr[data-node="${node}"]`)
}

test('jobs - a run by selector with a batch is a job: every node reaches ok in the matrix, live, one at a time', async () => {
  const { matrix, id } = await runJob(`sleep 1.5; echo '<b>done</b>'; printf '%s' '<script>window.__xss=1</script>'`, { batch: '1' })
  // Live: ship1 shows ok while ship3 has not started (batch 1, 1.5 s each).
  await state(matrix, 'ship1').and(page.locator('[data-state="ok"]')).waitFor()
  assert.is(await state(matrix, 'ship3').getAttribute('data-state'), 'pending', 'ship3 waits its turn while ship1 is already shown ok')
  for (const n of SHIPS) await state(matrix, n).and(page.locator('[data-state="ok"]')).waitFor()
  await matrix.and(page.locator('[data-status="done"]')).waitFor()
  assert.is(await matrix.locator('[data-counts] [data-count="ok"]').innerText(), 'ok 3')
  assert.is(await matrix.locator('[data-counts] [data-count]').count(), 1, 'no other state counted')
  for (const n of SHIPS) {
    assert.is(await state(matrix, n).locator('[data-exit]').innerText(), '0')
    assert.match(await state(matrix, n).locator('pre').innerText(), /^<b>done<\/b>\n<script>window.__xss=1<\/script>$/)
  }
  assert.is(await page.evaluate<unknown>('window.__xss'), undefined)
  assert.is(await page.locator('main pre script, main pre b').count(), 0, 'output is text, not HTML')
  // The batch reached central: each node was sent only after the one before it ended.
  const job = await getJob(id)
  assert.is(job.options.batch, '1')
  assert.equal(job.nodes.map((n) => n.name), SHIPS)
  for (let i = 1; i < job.nodes.length; i++) assert.ok(job.nodes[i]!.sentAt! >= job.nodes[i - 1]!.endedAt!, `${job.nodes[i]!.name} sent after ${job.nodes[i - 1]!.name} ended`)

  // The job's own page, by the link in the run.
  await matrix.locator(`a[href="#/jobs/${id}"]`).click()
  await page.locator('#job-h').filter({ hasText: id }).waitFor()
  assert.is(await page.locator('.job [data-counts] [data-count="ok"]').innerText(), 'ok 3')
  assert.match(await page.locator('.job-facts').innerText(), /to role=db, batch 1/)
  await page.screenshot({ path: shotPath('job') })
})

test('jobs - a streaming job shows its nodes running and their lines as they come, before it ends', async () => {
  const { matrix, id } = await runJob('echo tick-1; sleep 3; echo tick-2', { batch: '100%' }, 'cli.stream')
  for (const n of SHIPS) await state(matrix, n).locator('pre').filter({ hasText: 'tick-1' }).waitFor()
  const seen = Date.now()
  // Each shown running (the job's change may come a moment after the line itself), still without its last line.
  for (const n of SHIPS) await state(matrix, n).and(page.locator('[data-state="running"]')).waitFor({ timeout: 2000 })
  await matrix.locator('[data-counts]').filter({ hasText: /^running 3\s+of 3$/ }).waitFor({ timeout: 2000 })
  for (const n of SHIPS) assert.not.match(await state(matrix, n).locator('pre').innerText(), /tick-2/)
  await page.screenshot({ path: shotPath('job-running') })
  for (const n of SHIPS) await state(matrix, n).and(page.locator('[data-state="ok"]')).waitFor()
  assert.ok(Date.now() - seen >= 1000, `ended ${Date.now() - seen} ms after the first lines showed`)
  for (const n of SHIPS) assert.match(await state(matrix, n).locator('pre').innerText(), /tick-1\s+tick-2/)
  assert.is((await getJob(id)).status, 'done')
})

test('jobs - a failing canary: the canary failed, the rest skipped, the job stopped', async () => {
  const { matrix } = await runJob('exit 3', { canary: '1' })
  await matrix.and(page.locator('[data-status="stopped"]')).waitFor()
  await state(matrix, 'ship1').and(page.locator('[data-state="failed"]')).waitFor()
  await state(matrix, 'ship1').locator('[data-exit]').filter({ hasText: '3' }).waitFor()
  for (const n of ['ship2', 'ship3']) {
    await state(matrix, n).and(page.locator('[data-state="skipped"]')).waitFor()
    await state(matrix, n).locator('[data-detail]').filter({ hasText: 'canary' }).waitFor()
    assert.match(await state(matrix, n).locator('[data-detail]').innerText(), /canary/)
  }
  assert.equal(await matrix.locator('[data-counts] [data-count]').allInnerTexts(), ['failed 1', 'skipped 2'])
  assert.match(await matrix.locator('[data-reason]').innerText(), /^Job stopped: .*canary/)
  // A count shows only its nodes, and again all of them.
  await matrix.locator('[data-counts] [data-count="skipped"]').click()
  await matrix.locator('tbody tr[data-node="ship1"]').waitFor({ state: 'detached' })
  assert.equal(await matrix.locator('tbody tr').evaluateAll((trs) => trs.map((r) => r.getAttribute('data-node'))), ['ship2', 'ship3'])
  assert.is(await matrix.locator('[data-count="skipped"]').getAttribute('aria-pressed'), 'true')
  await matrix.locator('[data-counts] [data-count="skipped"]').press('Enter')
  await matrix.locator('tbody tr[data-node="ship1"]').waitFor()
  assert.is(await matrix.locator('tbody tr').count(), 3)
  await page.screenshot({ path: shotPath('run-job-canary') })
  // "Again" puts the rollout options back too.
  await page.fill('#canary', '')
  await page.fill('#args', 'something else')
  await page.locator('article.run').first().getByRole('button', { name: 'Again' }).click()
  assert.is(await page.inputValue('#canary'), '1')
  assert.is(await page.inputValue('#args'), 'exit 3')
})

test('jobs - bad rollout options are refused in the page, with the option named, and nothing is sent', async () => {
  const count = (await (await fetch(`${base}/v1/jobs`, { headers: { authorization: `Bearer ${TOKEN}` } })).json() as { jobs: unknown[] }).jobs.length
  await page.goto(`${base}/#/run`)
  await page.fill('#run-selector', 'role=db')
  await page.fill('#args', 'true')
  await page.fill('#batch', '150%')
  await page.click('#run-button')
  await page.getByRole('alert').filter({ hasText: 'batch must be' }).waitFor()
  const refused = pageErrors.findIndex((e) => /status of 400/.test(e))
  assert.ok(refused >= 0, pageErrors.join('\n'))
  pageErrors.splice(refused, 1)
  await page.fill('#batch', '')
  await page.fill('#canary', 'one')
  await page.click('#run-button')
  await page.getByRole('alert').filter({ hasText: 'Canary must be a whole number' }).waitFor()
  const after = (await (await fetch(`${base}/v1/jobs`, { headers: { authorization: `Bearer ${TOKEN}` } })).json() as { jobs: unknown[] }).jobs.length
  assert.is(after, count)
})

test('jobs - cancel from the job page skips what has not started; without the CSRF header it is refused', async () => {
  const { matrix, id } = await runJob('sleep 3; echo finished', { batch: '1' })
  await matrix.locator(`a[href="#/jobs/${id}"]`).click()
  const job = page.locator(`.job[data-job="${id}"]`)
  await job.waitFor()
  await state(job, 'ship1').and(page.locator('[data-state="delivered"]')).waitFor()
  // The cookie alone (no CSRF header), as another site's form could send it: refused, nothing cancelled.
  const forged = await page.evaluate<number, string>(async (jobId) => (await fetch(`/v1/jobs/${jobId}/cancel`, { method: 'POST' })).status, id)
  assert.is(forged, 403)
  const forgedJob = await page.evaluate<number>(async () => (await fetch('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ message: { toNodes: ['role=db'], method: 'node.ping' }, options: { batch: 1 } }) })).status)
  assert.is(forgedJob, 403, 'a job made with the cookie alone is refused')
  assert.is((await getJob(id)).status, 'running')
  await job.getByRole('button', { name: 'Cancel job' }).click()
  for (const n of ['ship2', 'ship3']) await state(job, n).and(page.locator('[data-state="skipped"]')).waitFor()
  await state(job, 'ship2').locator('[data-detail]').filter({ hasText: 'cancel' }).waitFor()
  // What had started runs to its end.
  await state(job, 'ship1').and(page.locator('[data-state="ok"]')).waitFor()
  assert.match(await state(job, 'ship1').locator('pre').innerText(), /finished/)
  await job.and(page.locator('[data-status="cancelled"]')).waitFor()
  assert.equal(await job.locator('[data-counts] [data-count]').allInnerTexts(), ['ok 1', 'skipped 2'])
  assert.is(await job.getByRole('button', { name: 'Cancel job' }).count(), 0, 'no cancel on an ended job')
  const api = await getJob(id)
  assert.equal(api.nodes.map((n) => n.state), ['ok', 'skipped', 'skipped'])
  await page.screenshot({ path: shotPath('job-cancelled') })
})

test('jobs - the list shows every job, newest first, with its status and counts; keyboard j opens it', async () => {
  await page.goto(`${base}/#/fleet`)
  await page.locator('#fleet-h').waitFor()
  await page.locator('body').click({ position: { x: 5, y: 400 } })
  await page.keyboard.press('j')
  await page.locator('#jobs-h').waitFor()
  const rows = page.locator('table.jobs tbody tr')
  await rows.nth(3).waitFor()
  const listed = await (await fetch(`${base}/v1/jobs`, { headers: { authorization: `Bearer ${TOKEN}` } })).json() as { jobs: { id: string }[] }
  assert.equal(await rows.evaluateAll((trs) => trs.map((r) => r.getAttribute('data-job'))), listed.jobs.map((j) => j.id))
  assert.is(listed.jobs.length, 4)
  const [cancelled, canary, , batch] = listed.jobs.map((j) => rows.and(page.locator(`[data-job="${j.id}"]`)))
  assert.match(await cancelled!.innerText(), /cli\.run[\s\S]*role=db[\s\S]*cancelled[\s\S]*ok 1[\s\S]*skipped 2\s+of 3/)
  assert.match(await canary!.innerText(), /stopped[\s\S]*failed 1[\s\S]*skipped 2\s+of 3/)
  assert.match(await batch!.innerText(), /done[\s\S]*ok 3\s+of 3/)
  await page.screenshot({ path: shotPath('jobs') })
  // The filter, reached with /.
  await page.keyboard.press('/')
  await page.keyboard.type('stopped')
  await page.waitForFunction("document.querySelectorAll('table.jobs tbody tr').length === 1")
  await page.fill('#jfilter', '')

  // A phone's width and the dark scheme.
  await page.setViewportSize({ width: 390, height: 844 })
  assert.ok(await page.evaluate<boolean>('document.documentElement.scrollWidth <= 390'), 'the list fits 390 px')
  await page.screenshot({ path: shotPath('jobs-phone') })
  await batch!.locator('a').first().click()
  await page.locator('.job[data-status="done"]').waitFor()
  assert.ok(await page.evaluate<boolean>('document.documentElement.scrollWidth <= 390'), 'the matrix fits 390 px')
  await page.screenshot({ path: shotPath('job-phone'), fullPage: true })
  await page.setViewportSize({ width: 1100, height: 700 })
  await page.emulateMedia({ colorScheme: 'dark' })
  await page.screenshot({ path: shotPath('job-dark') })
  await page.emulateMedia({ colorScheme: 'light' })
})

test('jobs - a node\'s page lists the jobs it is in, with its state in each (GET /v1/jobs?node=NAME)', async () => {
  const of = async (node: string): Promise<{ id: string; node: { name: string; state: string } }[]> =>
    ((await (await fetch(`${base}/v1/jobs?node=${node}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { jobs: { id: string; node: { name: string; state: string } }[] }).jobs
  const ship2 = await of('ship2')
  assert.equal(ship2.map((j) => `${j.node.name} ${j.node.state}`), ['ship2 skipped', 'ship2 skipped', 'ship2 ok', 'ship2 ok'])
  assert.equal(await of('central'), [], 'central is in no job')
  await page.goto(`${base}/#/node/ship2`)
  const items = page.locator('ul.node-jobs li')
  await items.nth(3).waitFor()
  assert.equal(await items.evaluateAll((lis) => lis.map((li) => `${li.getAttribute('data-job')} ${li.querySelector('[data-state]')!.getAttribute('data-state')}`)),
    ship2.map((j) => `${j.id} ${j.node.state}`))
  await page.locator('.card').filter({ has: page.locator('ul.node-jobs') }).screenshot({ path: shotPath('node-jobs') })
  await items.first().locator('a').click()
  await page.locator('#job-h').filter({ hasText: ship2[0]!.id }).waitFor()
})

test('jobs - with the live stream down, a running job\'s matrix still reaches its end (fetched again)', async () => {
  await context.route('**/v1/events', (r) => r.abort())
  try {
    await page.goto(`${base}/#/fleet`)
    await page.reload()
    await page.locator('.live').filter({ hasText: 'reconnecting' }).waitFor()
    const { matrix } = await runJob('sleep 1; echo late', { batch: '2' })
    for (const n of SHIPS) await state(matrix, n).and(page.locator('[data-state="ok"]')).waitFor()
    assert.equal(await matrix.locator('[data-counts] [data-count]').allInnerTexts(), ['ok 3'])
  } finally {
    await context.unroute('**/v1/events')
  }
  assert.equal(pageErrors, [], 'no script error or CSP violation in the page')
})

test.run()
