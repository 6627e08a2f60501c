import {
  BadRequestException,
  ConflictException,
  Inject,
  Injectable,
  NotFoundException,
} from '@nestjs/common';
import pg from 'pg';
import { InjectRepository } from '@nestjs/typeorm';
import { EntityManager, Repository } from 'typeorm';
import { findPage } from '../common/keyset.js';
import { IntIdPaginationDto } from '../common/pagination.dto.js';
import { TopicRef } from '../common/topic-ref.js';
import { AppConfig } from '../config/app-config.js';
import { Webhook } from '../database/entities/webhook.entity.js';
import { webhookHostProblem } from '../security/ssrf-guard.js';
import { createWebhookResolver, ResolveHost } from '../security/webhook-dns.js';
import { TopicsService } from '../topics/topics.service.js';
import { recordAction } from '../database/action-record.js';
import { PG_POOL } from '../database/database.module.js';
import { settleLines } from '../queue/webhook-state.js';
import { CreateWebhookDto } from './dto/create-webhook.dto.js';
import { UpdateWebhookDto } from './dto/update-webhook.dto.js';
import {
  changesLimits,
  headersProblem,
  mannersOf,
  storedHeaders,
  SYNC_WEBHOOK_LIMITS,
} from './webhook-manners.js';
import { generateSecret, secretProblem } from './webhook-secret.js';
import { webhookUrlProblem } from './webhook-url.js';

/** Two spellings of one URL (host case, default port, …) are the same receiver. */
function sameUrl(stored: string, url: URL): boolean {
  try {
    return new URL(stored).href === url.href;
  } catch {
    return stored === url.href;
  }
}

@Injectable()
export class WebhooksService {
  private readonly resolveHost: ResolveHost;

  constructor(
    @InjectRepository(Webhook) private readonly webhooks: Repository<Webhook>,
    private readonly topics: TopicsService,
    private readonly config: AppConfig,
    @Inject(PG_POOL) private readonly pool: pg.Pool,
  ) {
    this.resolveHost = createWebhookResolver(config.webhookDnsServers);
  }

  /** The registration rules of a URL that need no network. */
  private parsedUrl(raw: string): URL {
    const urlProblem = webhookUrlProblem(raw);
    if (urlProblem) throw new BadRequestException(urlProblem);
    return new URL(raw);
  }

  /**
   * The SSRF guard's registration check (the worker checks again at every connection). Run
   * before any transaction, which must not stay open while this waits on DNS.
   */
  private async checkHost(url: URL): Promise<void> {
    const hostProblem = await webhookHostProblem(
      url,
      this.config.webhookAllowPrivateNetworks,
      this.resolveHost,
    );
    if (hostProblem) throw new BadRequestException(hostProblem);
  }

  /**
   * The topic's other live webhooks' URLs, read after taking turns on the topic's row: changes
   * of webhooks on one topic are serialised, so a duplicate check sees every committed one.
   * NO KEY UPDATE does not conflict with the KEY SHARE lock a publish's foreign key takes.
   */
  private async urlsOfTopic(tx: EntityManager, topicId: number, except = 0): Promise<string[]> {
    const topic = await tx.query<unknown[]>(
      'SELECT 1 FROM topics WHERE id = $1 FOR NO KEY UPDATE',
      [topicId],
    );
    if (topic.length === 0) throw new NotFoundException(`topic ${topicId} does not exist`);
    const rows = await tx.query<{ url: string }[]>(
      'SELECT url FROM webhooks WHERE topic_id = $1 AND deleted_at IS NULL AND id <> $2',
      [topicId, except],
    );
    return rows.map((row) => row.url);
  }

  async create(input: CreateWebhookDto): Promise<Webhook> {
    const url = this.parsedUrl(input.url);
    const secretRefused = input.secret === undefined ? undefined : secretProblem(input.secret);
    if (secretRefused) throw new BadRequestException(secretRefused);
    this.checkHeaders(input.headers);
    await this.topics.getById(input.topic_id);
    await this.checkHost(url);
    return this.webhooks.manager.transaction(async (tx) => {
      const existing = await this.urlsOfTopic(tx, input.topic_id);
      if (existing.some((other) => sameUrl(other, url))) {
        throw new ConflictException(`topic ${input.topic_id} already has a webhook for this URL`);
      }
      if (existing.length >= this.config.maxWebhooksPerTopic) {
        throw new ConflictException(
          `topic ${input.topic_id} already has ${existing.length} webhooks, the most ` +
            `MAX_WEBHOOKS_PER_TOPIC=${this.config.maxWebhooksPerTopic} allows`,
        );
      }
      const repository = tx.getRepository(Webhook);
      const webhook = await repository.save(
        repository.create({
          topicId: input.topic_id,
          url: input.url,
          secret: input.secret ?? generateSecret(),
          ...(input.on_exhausted ? { onExhausted: input.on_exhausted } : {}),
          headers: storedHeaders(input.headers ?? null),
          maxInFlight: input.max_in_flight ?? null,
          rateLimitPerSecond: input.rate_limit_per_second ?? null,
          maxRetries: input.max_retries ?? null,
          backoffFactor: input.backoff_factor ?? null,
          eventTypes: input.event_types ?? null,
        }),
      );
      if (changesLimits(input)) await tx.query(SYNC_WEBHOOK_LIMITS, [webhook.id]);
      return webhook;
    });
  }

  /** The static headers' rules (webhook-manners.ts); a 400 names the header, never its value. */
  private checkHeaders(headers: unknown): void {
    if (headers === undefined) return;
    const problem = headersProblem(headers);
    if (problem) throw new BadRequestException(problem);
  }

  /**
   * PATCH /webhooks/{id} (DESIGN §7). A new URL passes the registration checks and is read by the
   * next claim. A status commits first, in a transaction of its own, then every line is made to
   * agree with it in batches (settleLines): pausing parks the waiting lines (no worker spends a
   * claim on them; one in flight finishes and is recorded), `active` (also from disabled) wakes
   * every line with work, each where it stopped. The claims obey the status from its commit on;
   * the batches only save them from walking past a paused webhook's lines, and wake what waits.
   * Settling again is harmless, so repeating a PATCH whose settling failed (a lock timeout, a
   * crash) finishes it.
   *
   * The row is locked FOR UPDATE, which conflicts with the key-share lock a producer's fan-out
   * takes on it: the status change waits for the producers in flight, and producers that come
   * after it read the status it committed. So does an event_types change: the messages published
   * after it are routed by the new list. Without that, a producer that read `paused` just
   * before a resume committed would leave its new line parked, with nothing left to wake it. The
   * lock is held only for the row's own update, not while the lines are settled, so publishing to
   * the topic's new partitions is not held up by a webhook's many lines.
   *
   * The audit log's row commits with the row's update: that is the change the operator made.
   * Settling the lines comes after, in batches of their own, and cannot share its transaction.
   */
  async update(id: number, input: UpdateWebhookDto): Promise<Webhook> {
    const manners = mannersOf(input);
    // event_types: null clears the list, absent leaves it
    const setEventTypes = input.event_types !== undefined;
    if (
      input.url === undefined &&
      input.status === undefined &&
      manners.length === 0 &&
      !setEventTypes
    ) {
      throw new BadRequestException(
        'give at least one of url, status, on_exhausted, headers, max_in_flight, ' +
          'rate_limit_per_second, max_retries, backoff_factor, event_types',
      );
    }
    this.checkHeaders(input.headers);
    const url = input.url === undefined ? undefined : this.parsedUrl(input.url);
    if (url) await this.checkHost(url);
    const webhook = await this.webhooks.manager.transaction(async (tx) => {
      const [current] = await tx.query<{ topic_id: number; status: string }[]>(
        'SELECT topic_id, status FROM webhooks WHERE id = $1 AND deleted_at IS NULL FOR UPDATE',
        [id],
      );
      if (!current) throw new NotFoundException(`webhook ${id} does not exist`);
      if (url) {
        const others = await this.urlsOfTopic(tx, current.topic_id, id);
        if (others.some((other) => sameUrl(other, url))) {
          throw new ConflictException(
            `topic ${current.topic_id} already has a webhook for this URL`,
          );
        }
      }
      const resume = input.status === 'active';
      const pause = input.status === 'paused' && current.status !== 'paused';
      // The settings given (absent = unchanged, null = the global setting).
      const settings = manners.map(([column], k) => `, ${column} = $${8 + k}`).join('');
      await tx.query(
        `UPDATE webhooks
         SET url = coalesce($2, url),
             status = coalesce($3, status),
             disabled_reason = CASE WHEN $4 OR $5 THEN NULL ELSE disabled_reason END,
             disabled_detail = CASE WHEN $4 OR $5 THEN NULL ELSE disabled_detail END,
             disabled_at = CASE WHEN $4 OR $5 THEN NULL ELSE disabled_at END,
             failing_since = CASE WHEN $4 THEN NULL ELSE failing_since END,
             event_types = CASE WHEN $6 THEN $7::text[] ELSE event_types END${settings}
         WHERE id = $1`,
        [
          id,
          input.url ?? null,
          input.status ?? null,
          resume,
          pause,
          setEventTypes,
          input.event_types ?? null,
          ...manners.map(([, v]) => v),
        ],
      );
      if (changesLimits(input)) await tx.query(SYNC_WEBHOOK_LIMITS, [id]);
      await recordAction(tx);
      return tx.getRepository(Webhook).findOneByOrFail({ id });
    });
    // Also when the status was already this one: harmless, and an operator's way to wake (or
    // park) lines left behind by anything unforeseen.
    if (input.status !== undefined) await settleLines(this.pool, id);
    return webhook;
  }

  async listByTopic(ref: TopicRef, page: IntIdPaginationDto): Promise<Webhook[]> {
    const { id: topicId } = await this.topics.get(ref);
    return findPage(this.webhooks, page, { topicId });
  }

  async getById(id: number): Promise<Webhook> {
    const webhook = await this.webhooks.findOneBy({ id });
    if (!webhook) throw new NotFoundException(`webhook ${id} does not exist`);
    return webhook;
  }

  /**
   * Marks it deleted (deleted_at), which takes effect at once: the trigger fans nothing more out
   * to it and the workers claim none of its lines. The workers purge its lines, deliveries and
   * row afterwards, in small batches (WebhookPurge), so this never holds the locks of a long
   * history and never waits on a producer or a worker.
   */
  async delete(id: number): Promise<void> {
    await this.webhooks.manager.transaction(async (tx) => {
      const result = await tx.getRepository(Webhook).softDelete({ id });
      if (!result.affected) throw new NotFoundException(`webhook ${id} does not exist`);
      // Its limits' bucket goes at once (the claim never looks at a deleted webhook's lines), so
      // a claim does not take the limits' way for a webhook that is gone.
      await tx.query('DELETE FROM webhook_limits WHERE webhook_id = $1', [id]);
      await recordAction(tx);
    });
  }

  /**
   * A new secret; the old one keeps signing, beside it, for WEBHOOK_SECRET_GRACE_SECONDS (the
   * worker signs with previous_secret while previous_secret_expires_at > now()). Only one old
   * secret is kept: rotating again within the grace period drops the oldest at once. One
   * statement: concurrent rotations queue on the row, and each keeps the secret the one before
   * it set as the previous one.
   */
  async rotateSecret(id: number): Promise<string> {
    const secret = generateSecret();
    // The database's clock, the one the worker compares with; the grace is a validated integer.
    const grace = Math.trunc(this.config.webhookSecretGraceSeconds);
    await this.webhooks.manager.transaction(async (tx) => {
      const result = await tx
        .getRepository(Webhook)
        .createQueryBuilder()
        .update()
        .set({
          secret,
          previousSecret: () => 'secret',
          previousSecretExpiresAt: () => `now() + make_interval(secs => ${grace})`,
        })
        .where('id = :id AND deleted_at IS NULL', { id })
        .execute();
      if (!result.affected) throw new NotFoundException(`webhook ${id} does not exist`);
      await recordAction(tx);
    });
    return secret;
  }
}
