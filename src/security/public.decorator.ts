import { applyDecorators, SetMetadata } from '@nestjs/common';
import { ApiExtension } from '@nestjs/swagger';

export const PUBLIC_ROUTE = 'pgwq:public-route';
/** Marks an operation in the OpenAPI document; configureApp turns it into `security: []`. */
export const PUBLIC_EXTENSION = 'x-pgwq-public';

/**
 * A route that needs no API key (only /health: load balancers probe it without credentials).
 * One decorator feeds both the guard and the OpenAPI document, so the two cannot disagree.
 */
export const Public = () =>
  applyDecorators(SetMetadata(PUBLIC_ROUTE, true), ApiExtension(PUBLIC_EXTENSION, true));
