import { Logger } from '@nestjs/common';
import {
  BreakerOutcome,
  BreakerPermit,
  CircuitBreakers,
  destinationOf,
} from './circuit-breaker.js';
import { Claims } from './claim.js';
import { fields, Job } from './job.js';
import { Leases } from './lease.js';
import { Releases } from './release.js';
import { DeliveryMetadata, metadataSignatureHeader, signatureHeader } from './signature.js';
import { WebhookResult, WebhookSender } from './webhook-sender.js';

/** A head that was POSTed: its attempt number, when the request started and how it ended. */
export interface Sent {
  attempt: number;
  startedAt: Date;
  result: WebhookResult;
}

/**
 * Sending a claimed head: past its destination's circuit breaker and with enough lease left,
 * signed, POSTed while the lease is renewed; the breaker is told how the request ended.
 */
export class Sending {
  constructor(
    private readonly logger: Logger,
    private readonly sender: WebhookSender,
    private readonly breakers: CircuitBreakers,
    private readonly claims: Claims,
    private readonly leases: Leases,
    private readonly releases: Releases,
  ) {}

  /** POSTs the job's head; undefined when nothing was sent (the line went back or is lost). */
  async send(job: Job): Promise<Sent | undefined> {
    const { line } = job;
    const destination = destinationOf(line.url);
    const permit = this.breakers.tryStart(destination);
    if (!permit) {
      // Open breaker: nothing sent, no attempt counted, the head unchanged. The line is due
      // again when a probe may go, for whichever worker claims it.
      const delayMs = this.breakers.retryInMs(destination);
      this.claims.block(line.webhook_id, destination);
      this.logger.debug(`not sent, ${destination} circuit open`, fields(line));
      await this.releases.release([{ line, head: line.sequence, delayMs }]);
      return undefined;
    }
    let result: WebhookResult | undefined;
    const attempt = (line.attempts ?? 0) + 1;
    try {
      const lease = await this.leases.coverRequest(job);
      if (lease !== 'covered') {
        if (lease === 'short') {
          await this.releases.release([{ line: job.line, head: job.line.sequence, delayMs: 0 }]);
        }
        return undefined;
      }
      const startedAt = new Date();
      const at = this.claims.requestStarted(line.webhook_id);
      try {
        result = await this.post(job, attempt);
      } finally {
        // Whether it answered quickly: what lets the webhook borrow slots (claim.ts).
        this.claims.requestEnded(line.webhook_id, at, result?.statusCode != null);
      }
      return { attempt, startedAt, result };
    } finally {
      this.requestEnded(job, destination, permit, result);
    }
  }

  /** POSTs the head, renewing the lease while the request runs. */
  private async post(job: Job, attempt: number): Promise<WebhookResult> {
    const { line } = job;
    const timestamp = Math.floor(Date.now() / 1000);
    const secrets = line.previous_secret ? [line.secret, line.previous_secret] : [line.secret];
    const body = line.body!;
    const metadata: DeliveryMetadata = {
      id: line.message_id!,
      timestamp: String(timestamp),
      topic: line.topic,
      partitionKey: line.partition_key,
      sequence: line.sequence,
      // "" for a line's first, and for an untyped message: what the headers carry (an absent
      // webhook-event-type reads as "").
      previousSequence: line.previous_sequence ?? '',
      eventType: line.event_type ?? '',
    };
    const headers: Record<string, string> = {
      // The webhook's static headers first, so none can replace ours (the API refuses those names).
      ...line.headers,
      'content-type': 'application/json',
      'webhook-id': metadata.id,
      'webhook-timestamp': metadata.timestamp,
      'webhook-signature': signatureHeader(secrets, metadata.id, timestamp, body),
      'webhook-topic': metadata.topic,
      'webhook-partition-key': metadata.partitionKey,
      'webhook-sequence': metadata.sequence,
      'webhook-previous-sequence': metadata.previousSequence,
      'webhook-metadata-signature': metadataSignatureHeader(secrets, metadata),
      'webhook-attempt': String(attempt),
    };
    if (line.event_type !== null) headers['webhook-event-type'] = line.event_type;
    return this.leases.renewWhile(job, () =>
      this.sender.send({ url: line.url, body, headers }, job.controller.signal),
    );
  }

  /** Tells the destination's breaker how a request ended, and logs when it opens or closes. */
  private requestEnded(
    job: Job,
    destination: string,
    permit: BreakerPermit,
    result: WebhookResult | undefined,
  ): void {
    const outcome: BreakerOutcome =
      result === undefined || job.lost || job.abandoned
        ? 'cancelled'
        : result.unreachable
          ? 'unreachable'
          : 'answered';
    const change = this.breakers.ended(destination, permit, outcome);
    if (change === 'opened') {
      this.claims.block(job.line.webhook_id, destination);
      this.logger.warn(
        `${destination}: circuit open after repeated timeouts or connection failures ` +
          `(last: ${result?.error}); nothing is sent to it for ${this.breakers.retryInMs(destination)} ms`,
      );
    } else if (change === 'closed') {
      this.logger.log(`${destination}: answers again; circuit closed`);
    }
  }
}
