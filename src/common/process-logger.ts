import { ConsoleLogger, ConsoleLoggerOptions, filterLogLevels } from '@nestjs/common';
import type { AppConfig } from '../config/app-config.js';

type JsonLogOptions = Parameters<ConsoleLogger['getJsonLogObject']>[1];

/**
 * Nest's own start-up lines (each module initialised, each controller and route mapped, "Nest
 * application successfully started"): some sixty lines of detail, logged at debug instead, so
 * the start-up output is the few lines that say what runs where.
 */
const NEST_BOOT_CONTEXTS = new Set([
  'NestFactory',
  'InstanceLoader',
  'RoutesResolver',
  'RouterExplorer',
  'NestApplication',
]);

/**
 * Nest's ConsoleLogger with the process role on every line: as the `[pgwq-<role>]` prefix in
 * text, as a `role` field in JSON (where Nest drops the prefix), so the API's and the workers'
 * lines can be told apart in one stream.
 */
class ProcessLogger extends ConsoleLogger {
  constructor(
    private readonly role: string,
    options: ConsoleLoggerOptions,
  ) {
    super({ ...options, prefix: `pgwq-${role}` });
  }

  override log(message: unknown, ...rest: unknown[]): void {
    const context = rest.at(-1);
    if (typeof context === 'string' && NEST_BOOT_CONTEXTS.has(context)) {
      return super.debug(message, ...rest);
    }
    return super.log(message, ...rest);
  }

  protected override getJsonLogObject(message: unknown, options: JsonLogOptions) {
    return { ...super.getJsonLogObject(message, options), role: this.role };
  }
}

/**
 * The logger of a process. LOG_FORMAT=json prints one JSON object per line; the plain objects a
 * call passes after the message (a delivery's ids, say) become fields of that object
 * (flattenParams), and in text they follow the message. LOG_LEVEL is the least severe level
 * printed; the default, `log`, keeps successful attempts (debug) out.
 */
export function createLogger(
  role: string,
  config: Pick<AppConfig, 'logFormat' | 'logLevel'>,
): ConsoleLogger {
  return new ProcessLogger(role, {
    json: config.logFormat === 'json',
    flattenParams: true,
    logLevels: filterLogLevels(`>=${config.logLevel}`),
  });
}
