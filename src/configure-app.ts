import { ArgumentMetadata, INestApplication, ValidationPipe } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { NextFunction, Request, Response } from 'express';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import type { Server } from 'node:http';
import { bodyLimit } from './common/early-refusal.js';
import { serveAdminUi } from './admin-ui/serve-admin-ui.js';
import { HttpExceptionFilter } from './common/http-exception.filter.js';
import { parseDtoBody } from './common/json-body.js';
import { PageInterceptor } from './common/page.js';
import { AppConfig, REQUEST_OVERHEAD_BYTES } from './config/app-config.js';
import { HttpMetrics } from './metrics/http-metrics.js';
import { ApiKeys } from './security/api-keys.js';
import { PUBLIC_EXTENSION } from './security/public.decorator.js';
import { requestGate } from './security/request-gate.js';

/** The batch publish route, whose body may be up to MAX_BATCH_BODY_BYTES. */
const BATCH_PUBLISH_PATH = /^\/topics\/[^/]+\/messages\/batch\/?$/;

/** Request headers must be in within this (or API_REQUEST_TIMEOUT_MS when shorter). */
const HEADERS_TIMEOUT_MS = 10_000;

/**
 * Validates bodies and queries. A body arrives as JSON text and is parsed here (parseDtoBody;
 * routes that read their body themselves use RawJsonBody, which no pipe touches). Path ids are
 * left as the raw strings for ParseIdPipe: the stock pipe would first coerce them with Number(),
 * which accepts "1e3", "0x10" and " 7".
 */
class BodyAndQueryValidationPipe extends ValidationPipe {
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (metadata.type === 'param') return value;
    return super.transform(metadata.type === 'body' ? parseDtoBody(value) : value, metadata);
  }
}

/**
 * Timeouts and a connection cap for an API behind a load balancer: a client has
 * API_REQUEST_TIMEOUT_MS to send a whole request (10 s for its headers), an idle keep-alive
 * connection lives API_KEEP_ALIVE_TIMEOUT_MS (longer than the balancer's idle timeout, 60 s on
 * AWS, so the balancer closes first and never sends on a connection we are closing), and at most
 * API_MAX_CONNECTIONS connections are open at once. Node checks the timeouts every
 * connectionsCheckingInterval (30 s by default): once a second keeps them close to exact.
 */
function limitConnections(server: Server, config: AppConfig): void {
  server.requestTimeout = config.apiRequestTimeoutMs;
  server.headersTimeout = Math.min(HEADERS_TIMEOUT_MS, config.apiRequestTimeoutMs);
  server.keepAliveTimeout = config.apiKeepAliveTimeoutMs;
  server.maxConnections = config.apiMaxConnections;
  (server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = 1000;
}

/**
 * Every answer, /docs included: never shown in a frame (a page of another site cannot overlay
 * the OpenAPI UI to make a user click in it) and never sniffed into another type than it says.
 * The admin UI sets its own, stricter policy (which also forbids framing).
 */
function noFramingNoSniffing(_req: Request, res: Response, next: NextFunction): void {
  res.setHeader('Content-Security-Policy', "frame-ancestors 'none'");
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  next();
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
  app.use(noFramingNoSniffing);
  limitConnections(app.getHttpServer() as Server, config);
  // In this order, before any body is read: cross-site browser requests are refused (Nest's
  // CrossOriginProtection: Sec-Fetch-Site, else Origin against Host), then the request gate
  // (Host, API key, JSON content type), then over-size bodies from Content-Length or as soon as
  // the stream passes the limit. Bodies are read as text: each route parses its own.
  app.enableCsrfProtection();
  app.use(requestGate(app.get(ApiKeys)));
  const limit = config.maxPayloadBytes + REQUEST_OVERHEAD_BYTES;
  app.use(
    bodyLimit((req) =>
      req.method === 'POST' && BATCH_PUBLISH_PATH.test(req.path) ? config.maxBatchBodyBytes : limit,
    ),
  );
  app.useBodyParser('text', {
    limit: Math.max(limit, config.maxBatchBodyBytes),
    type: ['application/json', 'application/*+json'],
    defaultCharset: 'utf-8',
  });
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
  app.useGlobalInterceptors(new PageInterceptor());
  app.set('x-powered-by', false);
  serveAdminUi(app);

  // The UI's HTML links its assets relative to the URL: /docs resolves them, while /docs/?… and
  // /docs/index.html would not (a blank page), so those come back to /docs.
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (req.method !== 'GET' || !['/docs/', '/docs/index.html'].includes(req.path)) return next();
    const at = req.originalUrl.indexOf('?');
    res.redirect(301, `../docs${at < 0 ? '' : req.originalUrl.slice(at)}`);
  });
  const document = buildOpenApiDocument(app);
  SwaggerModule.setup('docs', app, document, {
    jsonDocumentUrl: 'docs-json',
    // The key stays in the page's memory only: a reload forgets it, no storage keeps it.
    swaggerOptions: { persistAuthorization: false },
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
        // addSecurity, not addBearerAuth: that one labels every bearer token a JWT.
        .addSecurity(API_KEY_SCHEME, {
          type: 'http',
          scheme: 'bearer',
          description: 'One of the keys in API_KEYS. Not needed when API_KEYS is unset.',
        })
        .build(),
    ),
  );
}
