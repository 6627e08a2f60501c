import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { createTestApp } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';

/** The admin UI's files as the API serves them (the browser test is `npm run test:ui`). */
describe('admin UI files at /ui', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createTestApp(db.url, { API_KEYS: 'admin-ui-test-key-0123456789abcdefghij' });
  });
  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  it('serves the page and its bundle from the build, without a key, under a strict CSP', async () => {
    const server = app.getHttpServer();
    const redirect = await request(server).get('/ui');
    expect(redirect.status).toBe(301);
    expect(redirect.headers.location).toBe('/ui/');

    const page = await request(server).get('/ui/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.headers['content-security-policy']).toContain("connect-src 'self'");
    expect(page.text).toContain('<script type="module" src="main.js"></script>');
    // Everything it loads comes from the package: no other origin.
    expect(page.text).not.toMatch(/(src|href)="(https?:)?\/\//);

    const script = await request(server).get('/ui/main.js');
    expect(script.status).toBe(200);
    expect(script.headers['content-type']).toMatch(/javascript/);
    expect((await request(server).get('/ui/style.css')).status).toBe(200);
  });

  it('sends / to the UI and answers the favicon, without a key', async () => {
    const server = app.getHttpServer();
    const root = await request(server).get('/');
    expect([root.status, root.headers.location]).toEqual([302, '/ui/']);
    const icon = await request(server).get('/favicon.ico');
    expect([icon.status, icon.headers['content-type']]).toEqual([
      200,
      'image/svg+xml; charset=utf-8',
    ]);
    expect(String(icon.body)).toMatch(/^<svg /);
  });

  it('holds no data: the API behind it still wants the key', async () => {
    expect((await request(app.getHttpServer()).get('/topics')).status).toBe(401);
  });
});
