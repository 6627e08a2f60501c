import { Controller, Get, Header } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { Registry } from 'prom-client';

@ApiTags('metrics')
@Controller('metrics')
export class MetricsController {
  constructor(private readonly registry: Registry) {}

  @ApiOperation({
    summary: 'Prometheus metrics',
    description:
      'Per webhook: pending and dead deliveries, oldest pending age, blocked lines; API requests; ' +
      'process metrics. In the Prometheus text format. Needs the API key like every route but ' +
      '/health when API_KEYS is set (a scrape config can send it as a bearer token).',
  })
  @Get()
  @Header('content-type', Registry.PROMETHEUS_CONTENT_TYPE)
  @ApiProduces('text/plain')
  @ApiOkResponse({ description: 'The metrics', schema: { type: 'string' } })
  metrics(): Promise<string> {
    return this.registry.metrics();
  }
}
