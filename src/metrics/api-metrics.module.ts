import { Module } from '@nestjs/common';
import { HttpMetrics } from './http-metrics.js';
import { MetricsController } from './metrics.controller.js';
import { QueueGauges } from './queue-gauges.js';

/** The API's GET /metrics: HTTP request metrics, and the per-webhook queue gauges. */
@Module({
  controllers: [MetricsController],
  providers: [HttpMetrics, QueueGauges],
})
export class ApiMetricsModule {}
