import { remembered } from './remembered.js';

describe('remembered', () => {
  it('computes each argument once, undefined and null results included', () => {
    const calls: string[] = [];
    const f = remembered((key) => {
      calls.push(key);
      return key === 'none' ? undefined : key === 'null' ? null : key.length;
    });
    expect([f('abc'), f('abc'), f('none'), f('none'), f('null'), f('null')]).toEqual([
      3,
      3,
      undefined,
      undefined,
      null,
      null,
    ]);
    expect(calls).toEqual(['abc', 'none', 'null']);
  });

  it('starts afresh past its limit, and still answers right', () => {
    const calls: string[] = [];
    const f = remembered((key) => {
      calls.push(key);
      return key.toUpperCase();
    }, 2);
    expect([f('a'), f('b'), f('c'), f('a'), f('c')]).toEqual(['A', 'B', 'C', 'A', 'C']);
    expect(calls).toEqual(['a', 'b', 'c', 'a']);
  });
});
