import { BadRequestException, Injectable, NotFoundException } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { MoreThan, Repository } from 'typeorm';
import { PaginationDto } from '../common/pagination.dto.js';
import { Webhook } from '../database/entities/webhook.entity.js';
import { translatePgError } from '../database/pg-errors.js';
import { TopicsService } from '../topics/topics.service.js';
import { CreateWebhookDto } from './dto/create-webhook.dto.js';
import { generateSecret, SECRET_ROTATION_GRACE_MS, secretKey } from './webhook-secret.js';
import { webhookUrlProblem } from './webhook-url.js';

@Injectable()
export class WebhooksService {
  constructor(
    @InjectRepository(Webhook) private readonly webhooks: Repository<Webhook>,
    private readonly topics: TopicsService,
  ) {}

  async create(input: CreateWebhookDto): Promise<Webhook> {
    const urlProblem = webhookUrlProblem(input.url);
    if (urlProblem) throw new BadRequestException(urlProblem);
    if (input.secret !== undefined && !secretKey(input.secret)) {
      throw new BadRequestException('secret must be "whsec_" followed by base64 of 24 to 64 bytes');
    }
    await this.topics.getById(input.topic_id);
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

  /** Deleting cascades to its deliveries and lines: nothing more is sent to it. */
  async delete(id: number): Promise<void> {
    const result = await this.webhooks.delete({ id });
    if (!result.affected) throw new NotFoundException(`webhook ${id} does not exist`);
  }

  /** A new secret; the old one keeps signing, beside it, for SECRET_ROTATION_GRACE_MS. */
  async rotateSecret(id: number): Promise<string> {
    const webhook = await this.getById(id);
    const secret = generateSecret();
    const result = await this.webhooks.update(
      { id, secret: webhook.secret },
      {
        secret,
        previousSecret: webhook.secret,
        previousSecretExpiresAt: new Date(Date.now() + SECRET_ROTATION_GRACE_MS),
      },
    );
    if (!result.affected) throw new NotFoundException(`webhook ${id} does not exist`);
    return secret;
  }
}
