import { BadRequestException, Injectable, NotFoundException } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { IsNull, MoreThan, Repository } from 'typeorm';
import { PaginationDto } from '../common/pagination.dto.js';
import { AppConfig } from '../config/app-config.js';
import { Webhook } from '../database/entities/webhook.entity.js';
import { translatePgError } from '../database/pg-errors.js';
import { webhookHostProblem } from '../security/ssrf-guard.js';
import { TopicsService } from '../topics/topics.service.js';
import { CreateWebhookDto } from './dto/create-webhook.dto.js';
import { generateSecret, secretKey } from './webhook-secret.js';
import { webhookUrlProblem } from './webhook-url.js';

@Injectable()
export class WebhooksService {
  constructor(
    @InjectRepository(Webhook) private readonly webhooks: Repository<Webhook>,
    private readonly topics: TopicsService,
    private readonly config: AppConfig,
  ) {}

  async create(input: CreateWebhookDto): Promise<Webhook> {
    const urlProblem = webhookUrlProblem(input.url);
    if (urlProblem) throw new BadRequestException(urlProblem);
    if (input.secret !== undefined && !secretKey(input.secret)) {
      throw new BadRequestException('secret must be "whsec_" followed by base64 of 24 to 64 bytes');
    }
    await this.topics.getById(input.topic_id);
    // The SSRF guard's registration check (the worker checks again at every connection). It
    // runs last: it may wait on DNS, and a missing topic is the more useful answer.
    const hostProblem = await webhookHostProblem(
      new URL(input.url),
      this.config.webhookAllowPrivateNetworks,
    );
    if (hostProblem) throw new BadRequestException(hostProblem);
    try {
      return await this.webhooks.save(
        this.webhooks.create({
          topicId: input.topic_id,
          url: input.url,
          secret: input.secret ?? generateSecret(),
        }),
      );
    } catch (error) {
      // The topic can vanish between the check and the insert.
      translatePgError(error, { missing: `topic ${input.topic_id} does not exist` });
    }
  }

  async listByTopic(topicId: number, page: PaginationDto): Promise<Webhook[]> {
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
   * secret is kept: rotating again within the grace period drops the oldest at once.
   */
  async rotateSecret(id: number): Promise<string> {
    const webhook = await this.getById(id);
    const secret = generateSecret();
    // The database's clock, the one the worker compares with; the grace is a validated integer.
    const grace = Math.trunc(this.config.webhookSecretGraceSeconds);
    const result = await this.webhooks.update(
      { id, secret: webhook.secret, deletedAt: IsNull() },
      {
        secret,
        previousSecret: webhook.secret,
        previousSecretExpiresAt: () => `now() + make_interval(secs => ${grace})`,
      },
    );
    if (!result.affected) throw new NotFoundException(`webhook ${id} does not exist`);
    return secret;
  }
}
