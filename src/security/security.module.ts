import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ApiKeyGuard } from './api-key.guard.js';
import { ApiKeys } from './api-keys.js';

/**
 * The API-key guard, global through APP_GUARD rather than app.useGlobalGuards in configureApp:
 * as a provider it gets its dependencies injected, and it lives in the module graph that
 * AppModule (the API, in production and in every e2e test) imports, so no HTTP app can be built
 * without it. configureApp takes ApiKeys from here for the request gate. The worker's
 * WorkerModule does not import it: it has no HTTP surface.
 */
@Module({
  providers: [ApiKeys, { provide: APP_GUARD, useClass: ApiKeyGuard }],
  exports: [ApiKeys],
})
export class SecurityModule {}
