import { applyDecorators } from '@nestjs/common';
import { ApiPropertyOptional } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  ArrayMinSize,
  ArrayUnique,
  IsArray,
  IsOptional,
  Matches,
} from 'class-validator';
import {
  EVENT_TYPE_FILTER_PATTERN,
  MAX_EVENT_TYPE_FILTERS,
} from '../../database/migrations/1795633464700-EventRouting.js';

/**
 * `event_types` of POST /webhooks and PATCH /webhooks/{id}: null or absent = every message;
 * else 1 to 100 distinct entries, each an exact event type or a prefix ending in `.*`.
 */
export const EventTypesProperty = () =>
  applyDecorators(
    ApiPropertyOptional({
      type: [String],
      nullable: true,
      minItems: 1,
      maxItems: MAX_EVENT_TYPE_FILTERS,
      example: ['order.*', 'invoice.paid'],
      description:
        'The event types this webhook gets: exact types (invoice.paid) and prefixes ending in ' +
        '.* (order.* matches order.created and order.refund.done). null (or absent at ' +
        'creation) = every message, typed or not; with a list, messages without an event type ' +
        `are not sent to it. 1-${MAX_EVENT_TYPE_FILTERS} distinct entries of 1-128 characters ` +
        'of A-Z a-z 0-9 _ . : / -. A change applies to messages published after it.',
    }),
    IsOptional(),
    IsArray({ message: 'event_types must be an array of event types, or null' }),
    ArrayMinSize(1, {
      message: 'event_types must have at least 1 entry (null sends every message)',
    }),
    ArrayMaxSize(MAX_EVENT_TYPE_FILTERS, {
      message: `event_types must have at most ${MAX_EVENT_TYPE_FILTERS} entries`,
    }),
    ArrayUnique({ message: 'event_types must not repeat an entry' }),
    Matches(new RegExp(EVENT_TYPE_FILTER_PATTERN), {
      each: true,
      message:
        'each of event_types must be an event type (1-128 characters of A-Z a-z 0-9 _ . : / -) ' +
        'or a prefix ending in .* (order.*)',
    }),
  );
