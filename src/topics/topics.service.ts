import { Injectable, NotFoundException } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Raw, Repository } from 'typeorm';
import { findPage } from '../common/keyset.js';
import { describeTopic, topicCondition, TopicRef } from '../common/topic-ref.js';
import { Topic } from '../database/entities/topic.entity.js';
import { translatePgError } from '../database/pg-errors.js';
import { ListTopicsDto } from './dto/list-topics.dto.js';

/** `%`, `_` and `\` taken literally in a LIKE pattern. */
const likeLiteral = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

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

  /**
   * A page of topics in id order (the primary key). With a name prefix, the names that start
   * with it (LIKE 'prefix%' on topics_name_pattern_idx, a text_pattern_ops index: one range
   * scan whatever the database's collation), then in id order: a typeahead over 100,000 topics
   * reads only the matching ones.
   */
  list(page: ListTopicsDto): Promise<Topic[]> {
    const prefix = page.name_prefix;
    return findPage(
      this.topics,
      page,
      prefix === undefined
        ? {}
        : {
            name: Raw((name) => `${name} LIKE :prefix ESCAPE '\\'`, {
              prefix: `${likeLiteral(prefix)}%`,
            }),
          },
    );
  }

  /** The topic a route names, by id or by name: one index probe. */
  async get(ref: TopicRef): Promise<Topic> {
    const where = topicCondition(ref, 't', 1);
    const [row] = await this.topics.query<{ id: number; name: string; created_at: Date }[]>(
      `SELECT t.id, t.name, t.created_at FROM topics t WHERE ${where.sql}`,
      [where.value],
    );
    if (!row) throw new NotFoundException(`${describeTopic(ref)} does not exist`);
    return Object.assign(new Topic(), { id: row.id, name: row.name, createdAt: row.created_at });
  }

  getById(id: number): Promise<Topic> {
    return this.get({ id });
  }

  getByName(name: string): Promise<Topic> {
    return this.get({ name });
  }
}
