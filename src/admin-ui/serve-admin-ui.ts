import { Logger } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { Express } from 'express';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ADMIN_UI_PATH = '/ui';

/** `npm run build` bundles ui/ into dist/ui; this file runs from dist/ (or src/ under Jest). */
const UI_DIR = fileURLToPath(new URL('../../dist/ui/', import.meta.url));

/**
 * The UI loads nothing from elsewhere: its own script and style, and the API on the same
 * origin. Anything a receiver or a payload put in the data is shown as text by Preact, and this
 * policy stops any script that slipped through anyway.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The tab icon: a small blue square with a white arrow, inline so no file has to ship. */
const FAVICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">' +
  '<rect width="16" height="16" rx="3" fill="#2563eb"/>' +
  '<path d="M3 8h8M8 4.5 11.5 8 8 11.5" stroke="#fff" stroke-width="2" fill="none"/></svg>';

/**
 * Serves the admin UI's static files at /ui, sends / there (what a browser opens first) and
 * answers /favicon.ico. Like /docs they hold no data and need no key; the
 * data comes from the API, which asks the browser for one when API_KEYS is set.
 */
export function serveAdminUi(app: NestExpressApplication): void {
  if (!existsSync(join(UI_DIR, 'index.html'))) {
    new Logger('AdminUi').warn(`the admin UI is not built (${UI_DIR}): run npm run build`);
  }
  const http = app.getHttpAdapter().getInstance() as Express;
  http.get('/', (_req, res) => res.redirect(302, `${ADMIN_UI_PATH}/`));
  http.get('/favicon.ico', (_req, res) => {
    res.setHeader('Cache-Control', 'public, max-age=86400');
    res.type('image/svg+xml').send(FAVICON_SVG);
  });
  app.useStaticAssets(UI_DIR, {
    prefix: ADMIN_UI_PATH,
    setHeaders: (res) => {
      res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
      res.setHeader('X-Content-Type-Options', 'nosniff');
      // Revalidated on each load (ETag), so a new build shows at once.
      res.setHeader('Cache-Control', 'no-cache');
    },
  });
}
