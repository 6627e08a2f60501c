import {
  BadRequestException,
  ConflictException,
  Injectable,
  NotFoundException,
} from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { MoreThan, Repository } from 'typeorm';
import { IntIdPaginationDto } from '../common/pagination.dto.js';
import { AppConfig } from '../config/app-config.js';
import { Webhook } from '../database/entities/webhook.entity.js';
import { webhookHostProblem } from '../security/ssrf-guard.js';
import { createWebhookResolver, ResolveHost } from '../security/webhook-dns.js';
import { TopicsService } from '../topics/topics.service.js';
import { CreateWebhookDto } from './dto/create-webhook.dto.js';
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
  ) {
    this.resolveHost = createWebhookResolver(config.webhookDnsServers);
  }

  async create(input: CreateWebhookDto): Promise<Webhook> {
    const urlProblem = webhookUrlProblem(input.url);
    if (urlProblem) throw new BadRequestException(urlProblem);
    const secretRefused = input.secret === undefined ? undefined : secretProblem(input.secret);
    if (secretRefused) throw new BadRequestException(secretRefused);
    await this.topics.getById(input.topic_id);
    // The SSRF guard's registration check (the worker checks again at every connection). It
    // runs before the transaction, which it must not hold open while it waits on DNS.
    const url = new URL(input.url);
    const hostProblem = await webhookHostProblem(
      url,
      this.config.webhookAllowPrivateNetworks,
      this.resolveHost,
    );
    if (hostProblem) throw new BadRequestException(hostProblem);
    return this.webhooks.manager.transaction(async (tx) => {
      // Registrations on one topic take turns on the topic's row, so the duplicate and count
      // checks below see every committed registration: two racing requests cannot both pass.
      // NO KEY UPDATE does not conflict with the KEY SHARE lock a publish's foreign key takes.
      const topic = await tx.query<unknown[]>(
        'SELECT 1 FROM topics WHERE id = $1 FOR NO KEY UPDATE',
        [input.topic_id],
      );
      if (topic.length === 0) throw new NotFoundException(`topic ${input.topic_id} does not exist`);
      const existing = await tx.query<{ url: string }[]>(
        'SELECT url FROM webhooks WHERE topic_id = $1 AND deleted_at IS NULL',
        [input.topic_id],
      );
      if (existing.some((w) => sameUrl(w.url, url))) {
        throw new ConflictException(`topic ${input.topic_id} already has a webhook for this URL`);
      }
      if (existing.length >= this.config.maxWebhooksPerTopic) {
        throw new ConflictException(
          `topic ${input.topic_id} already has ${existing.length} webhooks, the most ` +
            `MAX_WEBHOOKS_PER_TOPIC=${this.config.maxWebhooksPerTopic} allows`,
        );
      }
      const repository = tx.getRepository(Webhook);
      return repository.save(
        repository.create({
          topicId: input.topic_id,
          url: input.url,
          secret: input.secret ?? generateSecret(),
        }),
      );
    });
  }

  async listByTopic(topicId: number, page: IntIdPaginationDto): Promise<Webhook[]> {
    await this.topics.getById(topicId);
    return this.webhooks.find({
      where: { topicId, id: MoreThan(page.after) },
      order: { id: 'ASC' },
      take: page.limit,
    });
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
    const result = await this.webhooks.softDelete({ id });
    if (!result.affected) throw new NotFoundException(`webhook ${id} does not exist`);
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
    const result = await this.webhooks
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
    return secret;
  }
}
