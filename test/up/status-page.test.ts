/**
 * The controller's status page in a real browser (Debian's Chromium driven by playwright-core)
 * against `pgflip up` running a risky migration: the page follows the flip as it happens (the
 * active side changes, the flip with its pause appears in the history), a restore without the
 * token is refused, and a screenshot is written to test-output/status-page.png.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { chromium, Browser } from 'playwright-core';
import { api, migrate, ROOT, Running, startUp, stopUp, tempDataDir } from './helpers';

const CHROMIUM = process.env.PGFLIP_CHROMIUM ?? '/usr/bin/chromium';
const dir = tempDataDir('pgflip-status-page-');
let up: Running | undefined;
let browser: Browser | undefined;

afterAll(async () => {
  await browser?.close();
  if (up) await stopUp(up);
  rmSync(dir, { recursive: true, force: true });
});

test('the status page follows a risky migration\'s flip live; a restore without the token is refused', async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (Debian package chromium; PGFLIP_CHROMIUM to point elsewhere)`);
  const r = await startUp(path.join(dir, 'data'), ['--watch-seconds', '2']);
  up = r;
  const { info } = r;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 1600 } })).newPage();
  const consoleErrors: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(e.message));

  await page.goto(`${info.controllerUrl}/`);
  await page.locator('#active', { hasText: 'blue' }).waitFor({ timeout: 20_000 });
  // the page is readable without the token, and does not contain it
  expect(await page.content()).not.toContain(info.apiToken);

  const schema = readFileSync(path.join(ROOT, 'migrations/000_example_schema.sql'), 'utf8');
  expect((await migrate(info, '000_example_schema.sql', schema, 'safe')).state).toBe('completed');
  // the risky migration runs while the page watches: it sees the active side change
  const drop = readFileSync(path.join(ROOT, 'migrations/002_drop_unused_table.sql'), 'utf8');
  const running = migrate(info, '002_drop_unused_table.sql', drop, 'risky');
  await page.locator('#active', { hasText: 'green' }).waitFor({ timeout: 90_000 });
  const risky = await running;
  expect(risky.state).toBe('completed');
  // the flip and its pause in the history
  await page.locator('#flip-list tr', { hasText: 'blue → green' }).first().waitFor({ timeout: 20_000 });
  const flipRow = await page.locator('#flip-list tr', { hasText: 'blue → green' }).first().innerText();
  expect(flipRow).toMatch(/epoch 1/);
  expect(flipRow).toMatch(/\d+(\.\d+)? ?(ms|s)/);
  expect(flipRow).toContain(risky.id); // the flip names the migration it belongs to

  // and the migration's end, live
  await page.locator('#history tr', { hasText: '002_drop_unused_table.sql' }).filter({ hasText: 'completed' }).waitFor({ timeout: 20_000 });

  // a restore without the token: the dialog asks, the server refuses, the page says so
  await page.waitForSelector('#rollback-points button.restore', { timeout: 20_000 });
  await page.locator('#rollback-points button.restore').first().click();
  await page.locator('#confirm-token').fill('');
  await page.locator('#confirm-ok').click();
  await page.locator('#msg', { hasText: /refused \(401\)/ }).waitFor({ timeout: 20_000 });
  // nothing was restored: green still serves without the dropped table
  expect((await api(info, 'GET', '/status')).body).toMatchObject({ active: 'green' });

  mkdirSync(path.join(ROOT, 'test-output'), { recursive: true });
  await page.screenshot({ path: path.join(ROOT, 'test-output', 'status-page.png'), fullPage: true });
  expect(existsSync(path.join(ROOT, 'test-output', 'status-page.png'))).toBe(true);
  // the browser logs the refused restore's 401; nothing else went wrong in the page
  expect(consoleErrors.filter((e) => !/status of 401/.test(e))).toEqual([]);
}, 180_000);
