import { AuditEntry } from './audit-entry.entity.js';
import { DeadDeliveryCount } from './dead-delivery-count.entity.js';
import { DeliveryAttempt } from './delivery-attempt.entity.js';
import { DeliveryLine } from './delivery-line.entity.js';
import { Delivery } from './delivery.entity.js';
import { LoggedAttempt } from './logged-attempt.entity.js';
import { Message } from './message.entity.js';
import { PartitionSequence } from './partition-sequence.entity.js';
import { Topic } from './topic.entity.js';
import { WebhookLimit } from './webhook-limit.entity.js';
import { Webhook } from './webhook.entity.js';

export {
  AuditEntry,
  DeadDeliveryCount,
  Delivery,
  DeliveryAttempt,
  DeliveryLine,
  LoggedAttempt,
  Message,
  PartitionSequence,
  Topic,
  Webhook,
  WebhookLimit,
};
export const ENTITIES = [
  Topic,
  Webhook,
  Message,
  PartitionSequence,
  Delivery,
  LoggedAttempt,
  DeliveryAttempt,
  DeliveryLine,
  DeadDeliveryCount,
  AuditEntry,
  WebhookLimit,
];
