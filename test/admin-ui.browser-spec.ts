import type { NestExpressApplication } from '@nestjs/platform-express';
import { mkdirSync, mkdtempSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Browser, chromium, Page } from 'playwright-core';
import { createTestApp } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { Receiver, Reply } from './helpers/receiver.js';
import { FAST_WORKER_ENV } from './helpers/worker.js';

/**
 * `npm run test:ui`: the admin UI in headless Chromium (Debian's /usr/bin/chromium, driven by
 * playwright-core), against a real API with its worker, PostgreSQL and an HTTP receiver.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
const API_KEY = 'ui-test-key-0123456789abcdefghijklmn';
/** API_KEYS names the key: the audit log shows this name, never the key. */
const KEY_NAME = 'operator';
const WIDE = { width: 1280, height: 800 };
const NARROW = { width: 390, height: 844 };
/** The UI refreshes every 3 s; what it shows may take a refresh or two. */
const SEEN = { timeout: 15_000 };

describe('admin UI at /ui (headless Chromium)', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;
  let receiver: Receiver;
  let reply: Reply = { status: 204 };
  let browser: Browser;
  let page: Page;
  let ui: string;
  const shots = process.env.PGWQ_UI_SCREENSHOTS ?? mkdtempSync(join(tmpdir(), 'pgwq-ui-'));
  const taken: string[] = [];

  /** A full-page screenshot of what is shown, wide and narrow. */
  async function screenshot(name: string) {
    for (const [size, viewport] of [
      ['wide', WIDE],
      ['narrow', NARROW],
    ] as const) {
      await page.setViewportSize(viewport);
      const file = join(shots, `${name}-${size}.png`);
      await page.screenshot({ path: file, fullPage: true });
      taken.push(file);
    }
    await page.setViewportSize(WIDE);
  }

  /** A link of the top navigation bar. */
  const nav = (name: string) => page.locator('header.top').getByRole('link', { name }).click();

  /** The row of a partition in the webhook page's lines table. */
  const lineRow = (partitionKey: string) =>
    page
      .locator('section', { hasText: 'Lines, most behind first' })
      .locator('tr', { has: page.getByRole('cell', { name: partitionKey, exact: true }) });

  /** Publishes from the topic's page, as a user would. */
  async function publish(partitionKey: string, expected: string) {
    await page.goto(`${ui}#/topics/1`);
    await page.getByLabel('Partition key').fill(partitionKey);
    await page.getByRole('button', { name: 'Publish' }).click();
    await page.getByText(expected).waitFor();
  }

  const deliveryStatuses = async () =>
    (await db.pool.query<{ status: string }>('SELECT status FROM deliveries ORDER BY id')).rows.map(
      (r) => r.status,
    );

  beforeAll(async () => {
    mkdirSync(shots, { recursive: true });
    db = await createTestDatabase();
    receiver = await Receiver.start(() => reply);
    app = await createTestApp(
      db.url,
      { ...FAST_WORKER_ENV, API_KEYS: `${KEY_NAME}:${API_KEY}`, MAX_RETRIES: '2' },
      { withWorker: true },
    );
    await app.listen(0, '127.0.0.1');
    ui = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}/ui/`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS });
    page = await browser.newPage({ viewport: WIDE });
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await receiver?.close();
    await db?.drop();
    console.log(`admin UI screenshots in ${shots}:\n${taken.join('\n')}`);
  });

  it('asks for the API key once and keeps it for the session', async () => {
    await page.goto(ui);
    await page.getByText('This API needs a key').waitFor();
    await screenshot('01-api-key');
    await page.getByLabel('API key').fill(API_KEY);
    await page.getByRole('button', { name: 'Use this key' }).click();
    await page.getByText('No topics yet').waitFor();
    await page.reload();
    await page.getByText('No topics yet').waitFor();
    expect(await page.getByText('This API needs a key').count()).toBe(0);
  });

  it('creates a topic and a webhook, publishes, and shows the message delivered', async () => {
    await page.getByLabel('Name', { exact: true }).fill('orders');
    await page.getByRole('button', { name: 'Create topic' }).click();
    await page.getByRole('link', { name: 'orders' }).click();

    await page.getByLabel('URL').fill(receiver.url);
    await page.getByRole('button', { name: 'Add webhook' }).click();
    await page.getByText('Webhook 1 added').waitFor();
    await page.locator('tr[data-webhook="1"]').getByText('active').waitFor();

    await page.getByLabel('Partition key').fill('user-42');
    await page.getByLabel('Payload (JSON)').fill('{"event": "order.created", "total": 12.5}');
    await page.getByRole('button', { name: 'Publish' }).click();
    await page.getByText('published message 1: sequence 1 of user-42').waitFor();
    await eventually(() => receiver.arrivals.length === 1, { what: 'the POST to the receiver' });
    await screenshot('02-topic');

    await page
      .locator('tr[data-webhook="1"]')
      .getByRole('link', { name: '1', exact: true })
      .click();
    // No click after this: the view refreshes by itself until the delivery shows as delivered.
    await page
      .locator('tr[data-delivery="1"]')
      .getByText('delivered', { exact: true })
      .waitFor(SEEN);
    await lineRow('user-42').getByText('idle', { exact: true }).waitFor(SEEN);
    await screenshot('03-webhook');

    await nav('Topics');
    await page.getByRole('link', { name: 'orders' }).waitFor();
    await screenshot('04-topics');
  });

  it('shows a delivery dead after the receiver failed it, with every attempt', async () => {
    reply = { status: 500, body: '{"error": "the receiver says no"}' };
    await page.getByLabel('Partition key').fill('user-42');
    await page.getByRole('button', { name: 'Publish' }).click();
    await page.getByText('published message 2: sequence 2 of user-42').waitFor();

    await nav('Dead letters');
    const row = page.locator('tr[data-delivery="2"]');
    await row.waitFor(SEEN);
    await page.getByText('1 dead').waitFor();
    await screenshot('05-dead-letters');

    await row.getByRole('link', { name: '2', exact: true }).first().click();
    await page.getByText('Attempts of delivery 2').waitFor();
    await page.getByText('the receiver says no').first().waitFor();
    const attempts = page.locator('tbody tr');
    expect(await attempts.count()).toBe(2);
    expect(await attempts.first().textContent()).toContain('500');
    await screenshot('06-attempts');
    expect(await deliveryStatuses()).toEqual(['delivered', 'dead']);
  });

  it('finds the webhook-id a receiver saw and redrives its dead delivery from the message', async () => {
    reply = { status: 204 };
    // The ticket: "our webhook-id N failed". The receiver saw it in the webhook-id header.
    const failed = receiver.where('webhook-sequence', '2')[0].headers['webhook-id'] as string;
    await page.goto(`${ui}#/topics/1`);
    await page.getByRole('search').getByLabel('search').fill(failed);
    await page.getByRole('search').getByRole('button', { name: 'Find' }).click();
    await page.getByText(`Message ${failed}: the webhook-id a receiver saw.`).waitFor();
    await page.getByRole('heading', { name: `Message ${failed}` }).waitFor();
    expect(await page.getByLabel('payload').textContent()).toContain('"order.created"');
    const delivery = page.locator('section.delivery-card[data-delivery="2"]');
    await delivery.getByText('dead', { exact: true }).waitFor();
    await delivery.getByText('the receiver says no').first().waitFor();
    expect(await delivery.locator('tbody tr').count()).toBe(2);
    await screenshot('06b-ticket-message');

    await delivery.getByRole('button', { name: 'Redrive' }).click();
    await delivery.getByText('1 redriven').waitFor();
    await eventually(async () => (await deliveryStatuses()).join() === 'delivered,delivered', {
      what: 'the redriven delivery to be delivered',
    });
    await page
      .locator('section.delivery-card[data-delivery="2"]')
      .getByText('delivered', { exact: true })
      .waitFor(SEEN);
    await screenshot('07-redriven');

    // A partition key finds every message of it, newest first; a delivery id lands on its message.
    await page.getByRole('search').getByLabel('search').fill('user-42');
    await page.getByRole('search').getByRole('button', { name: 'Find' }).click();
    await page.getByRole('heading', { name: 'Search: user-42' }).waitFor();
    const hits = page.locator('tbody tr');
    await hits.first().waitFor();
    expect(await hits.allTextContents()).toEqual([
      expect.stringMatching(/^2orderspartition keyuser-422/),
      expect.stringMatching(/^1orderspartition keyuser-421/),
    ]);
    await screenshot('07b-search-partition-key');
  });

  it('pauses and resumes a webhook from the UI', async () => {
    reply = { status: 204 };
    await page.goto(`${ui}#/topics/1/webhooks/1`);
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.locator('.facts').getByText('paused', { exact: true }).waitFor();
    await publish('user-7', 'sequence 1 of user-7');
    await page.locator('tr[data-webhook="1"]').getByText('paused', { exact: true }).waitFor();
    await page.goto(`${ui}#/topics/1/webhooks/1`);
    const line = lineRow('user-7');
    await line.getByText('paused', { exact: true }).waitFor(SEEN);
    expect(receiver.where('webhook-partition-key', 'user-7')).toHaveLength(0);
    await screenshot('08-paused');
    await page.getByRole('button', { name: 'Resume' }).click();
    await line.getByText('idle', { exact: true }).waitFor(SEEN);
    expect(receiver.where('webhook-partition-key', 'user-7')).toHaveLength(1);
  });

  it('edits a webhook to block, shows blocked and dead counts, skips and redrives after asking', async () => {
    await page.goto(`${ui}#/topics/1/webhooks/1`);
    await page.getByLabel('When retries run out').selectOption('block');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('saved', { exact: true }).waitFor();
    await page.getByText('when retries run out: the line stops').waitFor();
    reply = { status: 500, body: 'down for maintenance' };
    await publish('user-9', 'sequence 1 of user-9');
    await publish('user-9', 'sequence 2 of user-9');

    // Health at a glance: the topic page and the topic list show the blocked line and the dead.
    await page.goto(`${ui}#/topics/1`);
    const row = page.locator('tr[data-webhook="1"]');
    await row.locator('td[data-figure="blocked"]').getByText('1', { exact: true }).waitFor(SEEN);
    expect(await row.locator('td[data-figure="dead"]').textContent()).toBe('1');
    expect(await row.locator('td[data-figure="pending"]').textContent()).toBe('1');
    await row.getByText('HTTP 500').waitFor(SEEN);
    await screenshot('09a-topic-health');
    await nav('Topics');
    const topic = page.locator('tr[data-topic="1"]');
    await topic.getByText('HTTP 500').waitFor(SEEN);
    expect(await topic.locator('td:nth-child(6)').textContent()).toBe('1'); // dead
    expect(await topic.locator('td:nth-child(7)').textContent()).toBe('1'); // blocked lines
    await screenshot('09b-topics-health');

    await page.goto(`${ui}#/topics/1/webhooks/1`);
    const line = lineRow('user-9');
    await line.getByText('blocked', { exact: true }).waitFor(SEEN);
    expect(await line.getAttribute('class')).toBe('row-blocked');
    await screenshot('09-blocked-line');
    reply = { status: 204 };
    await line.getByRole('button', { name: 'Skip' }).click();
    await line.getByText('It stays dead; the line moves on.', { exact: false }).waitFor();
    await screenshot('09c-skip-confirm');
    expect(receiver.where('webhook-partition-key', 'user-9')).toHaveLength(2);
    await line.getByRole('button', { name: 'Yes, skip' }).click();
    await line.getByText('idle', { exact: true }).waitFor(SEEN);
    const arrived = receiver.where('webhook-partition-key', 'user-9');
    expect(arrived.map((a) => a.headers['webhook-sequence'])).toEqual(['1', '1', '2']);

    // Bulk redrive asks first; Cancel changes nothing.
    await page.goto(`${ui}#/dead-letter?webhook_id=1&topic_id=1`);
    await page.getByText('1 dead matching the filter').waitFor(SEEN);
    await page.getByRole('button', { name: 'Redrive all 1' }).click();
    await page.getByText('Send all 1 dead deliveries matching the filter again?').waitFor();
    await screenshot('09d-redrive-all-confirm');
    await page.getByRole('button', { name: 'Cancel' }).click();
    expect(await page.getByRole('button', { name: 'Redrive all 1' }).count()).toBe(1);
    expect((await deliveryStatuses()).filter((s) => s === 'dead')).toHaveLength(1);
    await page.getByRole('button', { name: 'Redrive all 1' }).click();
    await page.getByRole('button', { name: 'Yes, redrive all 1' }).click();
    await page.getByText('1 redriven').waitFor();
    await page.getByText('0 dead matching the filter').waitFor(SEEN);
  });

  it('replays a partition from a sequence from the UI, in order', async () => {
    reply = { status: 204 };
    const sequencesOf = () =>
      receiver.where('webhook-partition-key', 'user-42').map((a) => a.headers['webhook-sequence']);
    const before = sequencesOf().length;
    await page.goto(`${ui}#/topics/1/webhooks/1`);
    const replay = page.locator('section', { hasText: 'Sends the messages again' });
    await replay.getByLabel('Partition key').fill('user-42');
    await replay.getByLabel('From sequence').fill('1');
    await replay.getByRole('button', { name: 'Replay' }).click();
    await replay.getByText('2 to send again').waitFor();
    await screenshot('10-replayed');
    await eventually(() => sequencesOf().length >= before + 2, {
      what: 'user-42 sent again from sequence 1',
    });
    expect(sequencesOf().slice(before)).toEqual(['1', '2']);
  });

  it("rotates a webhook's secret after asking and shows the new one once", async () => {
    const before = (await db.pool.query('SELECT secret FROM webhooks WHERE id = 1')).rows[0].secret;
    await page.goto(`${ui}#/topics/1/webhooks/1`);
    await page.getByRole('button', { name: 'Rotate secret' }).click();
    await page.getByRole('button', { name: 'Yes, rotate secret' }).click();
    const shown = await page.getByLabel('new secret').textContent();
    const after = (await db.pool.query('SELECT secret FROM webhooks WHERE id = 1')).rows[0].secret;
    expect(shown).toBe(after);
    expect(after).not.toBe(before);
    await screenshot('11-secret-rotated');
    await page.getByRole('button', { name: 'I have kept it' }).click();
    expect(await page.getByLabel('new secret').count()).toBe(0);
  });

  it('shows the audit log: who did what, newest first, by the key name only', async () => {
    await nav('Audit log');
    await page.getByRole('heading', { name: 'Audit log, newest first' }).waitFor();
    const rows = page.locator('tr[data-audit]');
    await rows.first().waitFor(SEEN);
    const actions = (await rows.locator('td:nth-child(3)').allTextContents()).map((t) => t.trim());
    expect(actions).toEqual([
      'webhook.rotate_secret',
      'webhook.replay',
      'dead_letter.redrive', // redrive all, from the dead letters
      'line.skip',
      'webhook.update', // on_exhausted: block
      'webhook.update', // resume
      'webhook.update', // pause
      'dead_letter.redrive', // the ticket's delivery, from its message
    ]);
    expect(new Set(await rows.locator('td:nth-child(2)').allTextContents())).toEqual(
      new Set([KEY_NAME]),
    );
    expect(await page.content()).not.toContain(API_KEY);
    await screenshot('12-audit-log');
  });

  it("edits a webhook's own settings: event types, limits, a header whose value is never shown", async () => {
    await page.goto(`${ui}#/topics/1/webhooks/1`);
    await page.getByLabel('Event types').fill('order.*, invoice.paid');
    await page.getByLabel('Max in flight').fill('2');
    await page.getByLabel('Rate limit / s').fill('5');
    await page.getByRole('button', { name: 'Add headers' }).click();
    await page.getByRole('button', { name: '+ header' }).click();
    await page.getByLabel('header name').fill('Authorization');
    await page.getByLabel('header value').fill('Bearer s3cret-token');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('saved', { exact: true }).waitFor();
    const { rows } = await db.pool.query(
      'SELECT event_types, max_in_flight, rate_limit_per_second, headers FROM webhooks WHERE id = 1',
    );
    expect(rows[0]).toMatchObject({
      event_types: ['order.*', 'invoice.paid'],
      max_in_flight: 2,
      rate_limit_per_second: 5,
    });
    expect(JSON.stringify(rows[0].headers)).toContain('s3cret-token');
    // Read back: the header's name only, and the value nowhere on the page.
    await page.reload();
    await page
      .getByLabel('header names')
      .getByText('authorization', { exact: false })
      .waitFor(SEEN);
    expect(await page.content()).not.toContain('s3cret-token');
    await screenshot('12b-webhook-settings');
  });

  it('deletes a webhook after asking', async () => {
    await page.goto(`${ui}#/topics/1/webhooks/1`);
    await page.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('button', { name: 'Yes, delete' }).click();
    await page.getByText('No webhooks yet').waitFor(SEEN);
    const { rows } = await db.pool.query(
      'SELECT 1 FROM webhooks WHERE id = 1 AND deleted_at IS NULL',
    );
    expect(rows).toHaveLength(0);
  });
});
