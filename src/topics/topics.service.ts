import { Injectable, NotFoundException } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { findPage } from '../common/keyset.js';
import { IntIdPaginationDto } from '../common/pagination.dto.js';
import { Topic } from '../database/entities/topic.entity.js';
import { translatePgError } from '../database/pg-errors.js';

@Injectable()
export class TopicsService {
  constructor(@InjectRepository(Topic) private readonly topics: Repository<Topic>) {}

  async create(name: string): Promise<Topic> {
    try {
      return await this.topics.save(this.topics.create({ name }));
    } catch (error) {
      translatePgError(error, { conflict: `topic "${name}" already exists` });
    }
  }

  list(page: IntIdPaginationDto): Promise<Topic[]> {
    return findPage(this.topics, page);
  }

  async getById(id: number): Promise<Topic> {
    const topic = await this.topics.findOneBy({ id });
    if (!topic) throw new NotFoundException(`topic ${id} does not exist`);
    return topic;
  }

  async getByName(name: string): Promise<Topic> {
    const topic = await this.topics.findOneBy({ name });
    if (!topic) throw new NotFoundException(`topic "${name}" does not exist`);
    return topic;
  }
}
