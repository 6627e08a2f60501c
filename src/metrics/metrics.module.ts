import { Global, Module } from '@nestjs/common';
import { collectDefaultMetrics, Registry } from 'prom-client';

/**
 * The process's Prometheus registry, one per Nest application (not prom-client's global one), so
 * the e2e tests can run an API and workers in one process without their metrics mixing. It
 * starts with prom-client's process_* and nodejs_* metrics under their usual names, which
 * ready-made dashboards and alerts expect; every metric of ours is named pgwq_….
 */
@Global()
@Module({
  providers: [
    {
      provide: Registry,
      useFactory: () => {
        const registry = new Registry();
        collectDefaultMetrics({ register: registry });
        return registry;
      },
    },
  ],
  exports: [Registry],
})
export class MetricsModule {}
