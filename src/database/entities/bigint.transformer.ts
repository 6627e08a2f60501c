import { ValueTransformer } from 'typeorm';

/** pg returns bigint as a string; our ids and sequences stay far below 2^53, so expose numbers. */
export const bigintToNumber: ValueTransformer = {
  to: (value: number | null | undefined) => value,
  from: (value: string | null) => (value === null ? null : Number(value)),
};
