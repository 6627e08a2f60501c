import {
  Check,
  Column,
  CreateDateColumn,
  Entity,
  Index,
  PrimaryGeneratedColumn,
  Unique,
} from 'typeorm';

export const TOPIC_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$';

@Entity('topics')
@Unique('topics_name_key', ['name'])
@Check('topics_name_check', `name ~ '${TOPIC_NAME_PATTERN}'`)
// (name text_pattern_ops), for name prefixes: TypeORM cannot declare an operator class.
@Index('topics_name_pattern_idx', { synchronize: false })
export class Topic {
  @PrimaryGeneratedColumn('identity', {
    generatedIdentity: 'BY DEFAULT',
    primaryKeyConstraintName: 'topics_pkey',
  })
  id: number;

  @Column('text')
  name: string;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;
}
