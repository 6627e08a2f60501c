import { Test } from '@nestjs/testing';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { AppModule, Env } from '../../src/app.module.js';
import { configureApp } from '../../src/configure-app.js';
import type { Response } from 'supertest';
import { SCHEMA_ENV } from './db.js';

/** The API exactly as production builds it (configureApp), on the given database. */
export async function createTestApp(
  databaseUrl: string,
  env: Env = {},
  options: { withWorker?: boolean } = {},
): Promise<NestExpressApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [AppModule.forRoot({ ...SCHEMA_ENV, DATABASE_URL: databaseUrl, ...env }, options)],
  }).compile();
  const app = moduleRef.createNestApplication<NestExpressApplication>({
    bodyParser: false,
    logger: ['error', 'warn'],
  });
  configureApp(app);
  await app.init();
  return app;
}

/** The API's error answer: the status and the one body shape every 4xx and 5xx has. */
export function expectErrorResponse(res: Response, status: number, message?: RegExp): void {
  expect(res.status).toBe(status);
  expect(res.body).toEqual({
    status_code: status,
    error: expect.any(String),
    message: expect.any(String),
  });
  if (message) expect(res.body.message).toMatch(message);
}
