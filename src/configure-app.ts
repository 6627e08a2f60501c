import {
  ArgumentMetadata,
  BadRequestException,
  INestApplication,
  ValidationPipe,
} from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { bodyLimit } from './common/body-limit.middleware.js';
import { HttpExceptionFilter } from './common/http-exception.filter.js';
import { AppConfig } from './config/app-config.js';
import { HttpMetrics } from './metrics/http-metrics.js';
import { PUBLIC_EXTENSION } from './security/public.decorator.js';

/** The deepest nesting a request body may have (the payload sits one level down). */
export const MAX_JSON_DEPTH = 64;

/** Room in a publish request for everything around the payload (partition key, JSON syntax). */
const REQUEST_OVERHEAD_BYTES = 16 * 1024;

/**
 * Validates bodies and queries. Path ids are left as the raw strings for ParseIdPipe: the stock
 * pipe would first coerce them with Number(), which accepts "1e3", "0x10" and " 7".
 */
class BodyAndQueryValidationPipe extends ValidationPipe {
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (metadata.type === 'param') return value;
    if (metadata.type === 'body' && nestingDepth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
      throw new BadRequestException(
        `request body is nested deeper than ${MAX_JSON_DEPTH} levels of arrays and objects`,
      );
    }
    return super.transform(value, metadata);
  }
}

/**
 * The deepest nesting of arrays and objects in a parsed JSON body: a body nested thousands of
 * levels deep parses (JSON.parse does not recurse) but overflows the stack of class-transformer,
 * JSON.stringify and PostgreSQL's jsonb parser. Measured without recursion, stopping at `cap`+1.
 */
export function nestingDepth(value: unknown, cap: number): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop()!;
    if (item === null || typeof item !== 'object') continue;
    if (depth + 1 > deepest) deepest = depth + 1;
    if (deepest > cap) return deepest;
    for (const child of Object.values(item)) stack.push([child, depth + 1]);
  }
  return deepest;
}

export const API_KEY_SCHEME = 'api-key';

/**
 * Every operation needs the API key except those marked @Public(): they get `security: []`,
 * the others a 401 response beside their own.
 */
function declareSecurity(document: OpenAPIObject): OpenAPIObject {
  for (const item of Object.values(document.paths)) {
    for (const method of ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const) {
      const operation = item[method] as
        (NonNullable<(typeof item)[typeof method]> & Record<string, unknown>) | undefined;
      if (!operation) continue;
      if (operation[PUBLIC_EXTENSION]) {
        delete operation[PUBLIC_EXTENSION];
        operation.security = [];
        continue;
      }
      operation.security = [{ [API_KEY_SCHEME]: [] }];
      operation.responses['401'] ??= {
        description: 'Missing or wrong API key (only when API_KEYS is set)',
        content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorDto' } } },
      };
    }
  }
  return document;
}

/** Everything the HTTP app needs beyond its modules; production and the e2e tests share it. */
export function configureApp(app: NestExpressApplication): void {
  const config = app.get(AppConfig);
  app.use(app.get(HttpMetrics).middleware);
  // Over-size bodies are refused from Content-Length, or as soon as the stream passes the limit,
  // before they are parsed (bodyLimit answers at once; body-parser would first drain the body).
  const limit = config.maxPayloadBytes + REQUEST_OVERHEAD_BYTES;
  app.use(bodyLimit(limit));
  app.useBodyParser('json', { limit });
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

  const document = buildOpenApiDocument(app);
  SwaggerModule.setup('docs', app, document, {
    jsonDocumentUrl: 'docs-json',
    swaggerOptions: { persistAuthorization: true },
  });
}

/** The OpenAPI document of the API; also written by `npm run openapi` (src/openapi.ts). */
export function buildOpenApiDocument(app: INestApplication): OpenAPIObject {
  return declareSecurity(
    SwaggerModule.createDocument(
      app,
      new DocumentBuilder()
        .setTitle('pg-webhook-queue')
        .setDescription(
          'Ordered message queue in PostgreSQL with webhook delivery. ' +
            'Messages with the same partition key reach each webhook in order.',
        )
        .setVersion('0.1.0')
        .addBearerAuth(
          {
            type: 'http',
            scheme: 'bearer',
            description: 'One of the keys in API_KEYS. Not needed when API_KEYS is unset.',
          },
          API_KEY_SCHEME,
        )
        .build(),
    ),
  );
}
