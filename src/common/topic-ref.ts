import { BadRequestException, Injectable, PipeTransform } from '@nestjs/common';
import { ApiParam } from '@nestjs/swagger';
import { INT4_MAX } from './pagination.dto.js';

/**
 * A topic as a route names it: by id or by name. A path segment of digits only is an id; any
 * other is a name. Topic names therefore always hold a character that is not a digit (POST
 * /topics refuses `123`), so no name reads as an id. A topic an SQL producer created with an
 * all-digit name is reached by its id on routes, and by its name in pgwq_publish and
 * `GET /messages?topic=`.
 */
export type TopicRef = { id: number; name?: undefined } | { id?: undefined; name: string };

/** Only digits: a topic id, never a name. */
export const TOPIC_ID_SEGMENT = /^[0-9]+$/;

export function parseTopicRef(value: string): TopicRef {
  if (!TOPIC_ID_SEGMENT.test(value)) return { name: value };
  const id = Number(value);
  if (value.length > 10 || id < 1 || id > INT4_MAX) {
    throw new BadRequestException(
      `a topic is its name or its id, a positive integer up to ${INT4_MAX} (got "${value.slice(0, 40)}")`,
    );
  }
  return { id };
}

/** "topic 7" or 'topic "orders"', for messages. */
export function describeTopic(ref: TopicRef): string {
  return ref.id !== undefined ? `topic ${ref.id}` : `topic "${ref.name}"`;
}

/**
 * The SQL condition that finds the topic, on `alias`'s id (the primary key) or name (the unique
 * topics_name_key): one index probe either way. `$n` is the parameter that holds `value`.
 */
export function topicCondition(ref: TopicRef, alias: string, n: number) {
  return ref.id !== undefined
    ? { sql: `${alias}.id = $${n}::integer`, value: ref.id }
    : { sql: `${alias}.name = $${n}`, value: ref.name };
}

/** A `{topic}` path parameter: the topic's name or id. */
@Injectable()
export class ParseTopicRefPipe implements PipeTransform<string, TopicRef> {
  transform(value: string): TopicRef {
    return parseTopicRef(value);
  }
}

/** The `{topic}` path parameter of every route that takes a topic. */
export const ApiTopicParam = () =>
  ApiParam({
    name: 'topic',
    type: String,
    description: 'The topic by name, or by id (a segment of digits only is an id)',
    example: 'orders',
  });
