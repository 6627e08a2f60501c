import type { NestExpressApplication } from '@nestjs/platform-express';
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { createTestApp } from './app.js';
import { createTestDatabase, TestDatabase } from './db.js';

export const KEY_A = 'key-a-0123456789abcdefghijklmnopqrs';
export const KEY_B = 'key-b-fedcba9876543210ZYXWVUTSRQPO';
export const SECRET = 'whsec_' + randomBytes(32).toString('base64');

/**
 * The two APIs the security tests compare, on one database: `guarded` as in production (API_KEYS
 * set, private networks refused) and `open` as `npm start` runs (no API_KEYS, private networks
 * allowed). Call it inside a describe: it registers the hooks that start and stop them; `db`,
 * `guarded` and `open` are there once the describe's beforeAll ran.
 */
export function securityApps() {
  let db!: TestDatabase;
  let guarded!: NestExpressApplication;
  let open!: NestExpressApplication;

  beforeAll(async () => {
    db = await createTestDatabase();
    guarded = await createTestApp(db.url, {
      API_KEYS: `${KEY_A}, ${KEY_B}`,
      MAX_PAYLOAD_BYTES: '1024',
      WEBHOOK_SECRET_GRACE_SECONDS: '600',
    });
    open = await createTestApp(db.url, {
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
      MAX_WEBHOOKS_PER_TOPIC: '5',
    });
  });
  afterAll(async () => {
    await guarded?.close();
    await open?.close();
    await db?.drop();
  });

  return {
    get db() {
      return db;
    },
    get guarded() {
      return guarded;
    },
    get open() {
      return open;
    },
    /** The guarded API, and the header that passes its key check. */
    api: () => request(guarded.getHttpServer()),
    auth: { Authorization: `Bearer ${KEY_A}` },
  };
}
