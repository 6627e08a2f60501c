import { ArgumentMetadata, ValidationPipe } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { HttpExceptionFilter } from './common/http-exception.filter.js';
import { AppConfig } from './config/app-config.js';

/** Room in a publish request for everything around the payload (partition key, JSON syntax). */
const REQUEST_OVERHEAD_BYTES = 16 * 1024;

/**
 * Validates bodies and queries. Path ids are left as the raw strings for ParseIdPipe: the stock
 * pipe would first coerce them with Number(), which accepts "1e3", "0x10" and " 7".
 */
class BodyAndQueryValidationPipe extends ValidationPipe {
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    return metadata.type === 'param' ? value : super.transform(value, metadata);
  }
}

/** Everything the HTTP app needs beyond its modules; production and the e2e tests share it. */
export function configureApp(app: NestExpressApplication): void {
  const config = app.get(AppConfig);
  // Over-size bodies are refused from Content-Length, or as soon as the stream passes the limit,
  // before they are parsed.
  app.useBodyParser('json', { limit: config.maxPayloadBytes + REQUEST_OVERHEAD_BYTES });
  app.useGlobalPipes(
    new BodyAndQueryValidationPipe({
      whitelist: true,
      forbidNonWhitelisted: true,
      forbidUnknownValues: true,
      transform: true,
      stopAtFirstError: true,
    }),
  );
  app.useGlobalFilters(new HttpExceptionFilter());
  app.set('x-powered-by', false);

  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('pg-webhook-queue')
      .setDescription(
        'Ordered message queue in PostgreSQL with webhook delivery. ' +
          'Messages with the same partition key reach each webhook in order.',
      )
      .setVersion('0.1.0')
      .build(),
  );
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs-json' });
}
