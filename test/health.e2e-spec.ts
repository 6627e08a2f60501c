import request from 'supertest';
import { createTestApp, expectErrorResponse as expectError } from './helpers/app.js';
import { createTestDatabase } from './helpers/db.js';

/** GET /health answers for the database: the check a load balancer or compose makes. */
describe('REST API', () => {
  describe('health', () => {
    it('is 200 while the database answers and 503 once it is gone', async () => {
      const own = await createTestDatabase();
      const ownApp = await createTestApp(own.url);
      try {
        const ownHttp = request(ownApp.getHttpServer());
        expect((await ownHttp.get('/health').expect(200)).body).toEqual({ status: 'ok' });
        await own.drop();
        expectError(await ownHttp.get('/health'), 503, /database/);
      } finally {
        await ownApp.close().catch(() => undefined);
        await own.drop().catch(() => undefined);
      }
    });
  });
});
