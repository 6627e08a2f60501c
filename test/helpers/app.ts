import { Test } from '@nestjs/testing';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { AppModule, Env } from '../../src/app.module.js';
import { configureApp } from '../../src/configure-app.js';

/** The API exactly as production builds it (configureApp), on the given database. */
export async function createTestApp(
  databaseUrl: string,
  env: Env = {},
  options: { withWorker?: boolean } = {},
): Promise<NestExpressApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [AppModule.forRoot({ DATABASE_URL: databaseUrl, ...env }, options)],
  }).compile();
  const app = moduleRef.createNestApplication<NestExpressApplication>({
    bodyParser: false,
    logger: ['error', 'warn'],
  });
  configureApp(app);
  await app.init();
  return app;
}
