import { Column, Entity, JoinColumn, ManyToOne, PrimaryColumn } from 'typeorm';
import { bigintToNumber } from './bigint.transformer.js';
import { Topic } from './topic.entity.js';

/** The counter the trigger bumps; its row lock is what orders a partition's sequences by commit. */
@Entity('partition_sequences')
export class PartitionSequence {
  @PrimaryColumn('integer', {
    name: 'topic_id',
    primaryKeyConstraintName: 'partition_sequences_pkey',
  })
  topicId: number;

  @ManyToOne(() => Topic, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'topic_id', foreignKeyConstraintName: 'partition_sequences_topic_id_fkey' })
  topic?: Topic;

  @PrimaryColumn('text', {
    name: 'partition_key',
    primaryKeyConstraintName: 'partition_sequences_pkey',
  })
  partitionKey: string;

  @Column('bigint', { name: 'last_sequence', transformer: bigintToNumber })
  lastSequence: number;
}
