import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ApiKeyGuard } from './api-key.guard.js';

/**
 * The API-key guard, global through APP_GUARD rather than app.useGlobalGuards in configureApp:
 * as a provider it gets AppConfig and Reflector injected, and it lives in the module graph that
 * AppModule (the API, in production and in every e2e test) imports, so no HTTP app can be built
 * without it. The worker's WorkerModule does not import it: it has no HTTP surface.
 */
@Module({
  providers: [{ provide: APP_GUARD, useClass: ApiKeyGuard }],
})
export class SecurityModule {}
