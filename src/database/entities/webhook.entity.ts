import {
  Check,
  Column,
  CreateDateColumn,
  DeleteDateColumn,
  Entity,
  Index,
  JoinColumn,
  ManyToOne,
  PrimaryGeneratedColumn,
} from 'typeorm';
import { Topic } from './topic.entity.js';

@Entity('webhooks')
@Check('webhooks_url_check', 'char_length(url) <= 2048')
@Index('webhooks_deleted_idx', ['id'], { where: 'deleted_at IS NOT NULL' })
export class Webhook {
  @PrimaryGeneratedColumn('identity', {
    generatedIdentity: 'BY DEFAULT',
    primaryKeyConstraintName: 'webhooks_pkey',
  })
  id: number;

  @Index('webhooks_topic_id_idx')
  @Column('integer', { name: 'topic_id' })
  topicId: number;

  @ManyToOne(() => Topic, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'topic_id', foreignKeyConstraintName: 'webhooks_topic_id_fkey' })
  topic?: Topic;

  @Column('text')
  url: string;

  @Column('text')
  secret: string;

  /** The secret before the last rotation; it keeps signing until previousSecretExpiresAt. */
  @Column('text', { name: 'previous_secret', nullable: true })
  previousSecret: string | null;

  @Column('timestamptz', { name: 'previous_secret_expires_at', nullable: true })
  previousSecretExpiresAt: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  /**
   * Set by DELETE /webhooks/{id}: from then on the trigger fans nothing out to it, workers claim
   * none of its lines, and the repository's finds skip it (a soft-delete column); the workers'
   * maintenance then purges its lines, deliveries and row (WebhookPurge).
   */
  @DeleteDateColumn({ name: 'deleted_at', type: 'timestamptz' })
  deletedAt: Date | null;
}
