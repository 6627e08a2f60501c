import 'reflect-metadata';
import { writeFileSync } from 'node:fs';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';
import { buildOpenApiDocument } from './configure-app.js';

/**
 * `node dist/openapi.js [file]`: writes the OpenAPI document (default openapi.json) without a
 * database. Preview mode builds the module graph and routes but instantiates no provider, so
 * nothing connects anywhere. Used by `npm run lint:openapi`.
 */
const file = process.argv[2] ?? 'openapi.json';
const app = await NestFactory.create(AppModule.forRoot({}), {
  preview: true,
  abortOnError: false,
  logger: ['error'],
});
writeFileSync(file, JSON.stringify(buildOpenApiDocument(app), null, 2) + '\n');
await app.close();
console.log(`wrote ${file}`);
