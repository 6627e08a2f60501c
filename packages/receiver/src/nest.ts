import { verify, VerifyOptions, WebhookVerificationError } from './verify.js';
import type { Delivery } from './verify.js';

/** The part of NestJS's ExecutionContext the guard uses (the kit does not depend on NestJS). */
export interface HttpExecutionContext {
  switchToHttp(): { getRequest<T = unknown>(): T };
}

interface GuardedRequest {
  headers: Record<string, string | string[] | undefined>;
  /** Set by NestFactory.create(AppModule, { rawBody: true }). */
  rawBody?: Buffer;
  webhook?: Delivery;
}

/**
 * A NestJS guard: verifies both signatures of the request and puts the delivery in
 * `request.webhook`. Create the app with `{ rawBody: true }`. A refused request throws what
 * `refuse` makes of the reason (pass `(m) => new UnauthorizedException(m)` for a 401); without it
 * the guard returns false and Nest answers 403.
 *
 *   @UseGuards(new WebhookGuard(process.env.WEBHOOK_SECRET!))
 */
export class WebhookGuard {
  constructor(
    private readonly secret: string | readonly string[],
    private readonly options: VerifyOptions & { refuse?: (reason: string) => Error } = {},
  ) {}

  canActivate(context: HttpExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<GuardedRequest>();
    if (!request.rawBody) {
      throw new Error('WebhookGuard needs the raw body: NestFactory.create(…, { rawBody: true })');
    }
    try {
      request.webhook = verify(
        { headers: request.headers, body: request.rawBody },
        this.secret,
        this.options,
      );
      return true;
    } catch (error) {
      if (!(error instanceof WebhookVerificationError)) throw error;
      if (this.options.refuse) throw this.options.refuse(error.message);
      return false;
    }
  }
}
