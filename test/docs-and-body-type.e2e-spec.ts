import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { createTestApp } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';

/** The small things a first user trips on: /docs/ with a slash, the bearer scheme, form posts. */
describe('docs and request body type', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;
  let http: ReturnType<typeof request>;

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createTestApp(db.url);
    http = request(app.getHttpServer());
  });
  afterAll(async () => {
    await app.close();
    await db.drop();
  });

  it('sends /docs/, /docs/?… and /docs/index.html to /docs, whose page finds its assets', async () => {
    for (const [path, location] of [
      ['/docs/', '../docs'],
      ['/docs/?tag=topics', '../docs?tag=topics'],
      ['/docs/index.html', '../docs'],
    ]) {
      const res = await http.get(path).expect(301);
      expect(res.headers.location).toBe(location);
    }
    const page = await http.get('/docs').expect(200);
    // Relative to /docs these are /docs/…: the page is not blank.
    const assets = [...page.text.matchAll(/(?:src|href)="\.\/(docs\/[^"]+)"/g)].map((m) => m[1]);
    expect(assets).toEqual(expect.arrayContaining(['docs/swagger-ui-init.js']));
    for (const asset of assets) await http.get(`/${asset}`).expect(200);
  });

  it('declares the API key as a plain bearer token, not a JWT', async () => {
    const { body: doc } = await http.get('/docs-json').expect(200);
    expect(doc.components.securitySchemes['api-key']).toEqual({
      type: 'http',
      scheme: 'bearer',
      description: expect.any(String),
    });
  });

  it('answers a body that is not JSON with 415 "must be JSON", and writes nothing', async () => {
    await http.post('/topics').send({ name: 'orders' }).expect(201);
    for (const path of ['/topics', '/webhooks', '/topics/orders/messages']) {
      const res = await http.post(path).type('form').send({ name: 'x', topic_id: '1' });
      expect({ path, status: res.status, body: res.body }).toEqual({
        path,
        status: 415,
        body: {
          status_code: 415,
          error: 'Unsupported Media Type',
          message: expect.stringMatching(
            /^request body must be JSON: send Content-Type: application\/json \(got "application\/x-www-form-urlencoded"\)$/,
          ),
        },
      });
    }
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM topics');
    expect(rows[0].n).toBe(1);
    // A request without a body needs no content type.
    await http.post('/webhooks/999/secret/rotate').expect(404);
  });
});
