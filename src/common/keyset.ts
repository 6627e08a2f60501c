import {
  FindOperator,
  FindOptionsOrder,
  FindOptionsWhere,
  LessThan,
  MoreThan,
  ObjectLiteral,
  Repository,
  SelectQueryBuilder,
} from 'typeorm';
import type { ListOrder } from './pagination.dto.js';

/**
 * Keyset paging, the one shape of every list (DESIGN §5): `limit` rows in id order after the
 * exclusive id `after`; newest first (`order=desc`) `after` means older, and 0 the newest. The
 * next page's cursor is the last row's id, which PageInterceptor puts in the Link header.
 */
export interface KeysetPage {
  limit: number;
  after: number;
  order?: ListOrder;
}

const descending = (page: KeysetPage) => page.order === 'desc';
const directionOf = (page: KeysetPage) => (descending(page) ? 'DESC' : 'ASC');

/** How a page's ids compare with `after`: none for the first page newest first. */
function afterOperator(page: KeysetPage): '>' | '<' | undefined {
  if (!descending(page)) return '>';
  return page.after > 0 ? '<' : undefined;
}

/** The `id` condition of a page, as a find option. */
function afterId(page: KeysetPage): FindOperator<number> | undefined {
  const operator = afterOperator(page);
  if (!operator) return undefined;
  return operator === '>' ? MoreThan(page.after) : LessThan(page.after);
}

/**
 * One page of `repo`'s rows that match `where`, by id. `leading` names a column the list's
 * index starts with (an equality in `where`), ordered too so the planner walks that index in
 * order rather than sorting.
 */
export function findPage<T extends { id: number }>(
  repo: Repository<T>,
  page: KeysetPage,
  where: FindOptionsWhere<T> = {},
  leading?: keyof T & string,
): Promise<T[]> {
  const direction = directionOf(page);
  const id = afterId(page);
  return repo.find({
    where: { ...where, ...(id ? { id } : {}) } as FindOptionsWhere<T>,
    order: { ...(leading ? { [leading]: direction } : {}), id: direction } as FindOptionsOrder<T>,
    take: page.limit,
  });
}

/** A list's filter on one of its alias's columns: a condition and its parameters. */
export interface ListCondition {
  where: string;
  parameters?: ObjectLiteral;
}

/**
 * A list within one scope (a webhook's deliveries, a topic's messages), by property names of the
 * query builder's entity. `scope` leads every index the list reads: (scope, id) for the whole
 * list, and the unique key (scope, partitionKey, sequence) for one partition.
 */
export interface ScopedList {
  scope: string;
  scopeId: number;
  /** Optional equalities: property → value; an undefined value is no filter. */
  equal?: Record<string, string | number | undefined>;
  /** Any other filters, e.g. over a joined table. */
  conditions?: ListCondition[];
  /** One partition only: walked in sequence order from the `after` row's sequence. */
  partitionKey?: string;
}

/**
 * One page of a ScopedList from `qb` (its main alias, select already set): every filter an index
 * range, see bench/results/finding-explain.txt.
 */
export function scopedPage<T extends ObjectLiteral>(
  qb: SelectQueryBuilder<T>,
  list: ScopedList,
  page: KeysetPage,
): Promise<T[]> {
  const a = qb.alias;
  const direction = directionOf(page);
  qb.where(`${a}.${list.scope} = :scopeId`, { scopeId: list.scopeId })
    .setParameters({ after: page.after })
    .limit(page.limit);
  for (const [property, value] of Object.entries(list.equal ?? {})) {
    if (value !== undefined) qb.andWhere(`${a}.${property} = :${property}`, { [property]: value });
  }
  for (const condition of list.conditions ?? []) qb.andWhere(condition.where, condition.parameters);
  if (list.partitionKey === undefined) {
    const after = afterOperator(page);
    if (after) qb.andWhere(`${a}.id ${after} :after`);
    // Ordered by (scope, id), with the scope a range rather than an equality (which the planner
    // would drop from the ORDER BY as a constant): only the indexes led by the scope give that
    // order, so the plan never walks an index of id alone (deliveries_dead_letter_idx, the
    // primary key) reading every other scope's rows to find this one's.
    qb.andWhere(`${a}.${list.scope} BETWEEN :scopeId AND :scopeId`);
    return qb.orderBy(`${a}.${list.scope}`, direction).addOrderBy(`${a}.id`, direction).getMany();
  }
  qb.andWhere(`${a}.partitionKey = :partitionKey`, { partitionKey: list.partitionKey });
  if (page.after > 0) {
    // The cursor's place in the partition: a row of another partition (or none) ends the list.
    const cursor = qb
      .subQuery()
      .select('c.sequence')
      .from(qb.expressionMap.mainAlias!.target, 'c')
      .where(`c.id = :after AND c.${list.scope} = :scopeId AND c.partitionKey = :partitionKey`);
    qb.andWhere(`${a}.sequence ${descending(page) ? '<' : '>'} ${cursor.getQuery()}`);
  }
  return qb.orderBy(`${a}.sequence`, direction).getMany();
}
