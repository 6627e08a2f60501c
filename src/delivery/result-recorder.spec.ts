import { ResultRecorder } from './result-recorder.js';

/** A `send` that records each call's requests and answers when told to. */
function controlledSend() {
  const calls: {
    requests: number[];
    wait: boolean;
    answer: (rows?: string[]) => void;
    fail: () => void;
  }[] = [];
  const send = (requests: number[], wait: boolean) =>
    new Promise<string[]>((resolve, reject) => {
      calls.push({
        requests,
        wait,
        answer: (rows) => resolve(rows ?? requests.map((r) => `row ${r}`)),
        fail: () => reject(new Error(`failed ${requests.join(',')}`)),
      });
    });
  return { calls, send };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('ResultRecorder', () => {
  it('sends results of one event-loop turn together, and those that come meanwhile in the next call', async () => {
    const { calls, send } = controlledSend();
    const recorder = new ResultRecorder(send);
    const first = [recorder.record(1), recorder.record(2)];
    await turn();
    expect(calls.map((c) => c.requests)).toEqual([[1, 2]]);

    const later = [recorder.record(3), recorder.record(4), recorder.record(5)];
    await turn();
    expect(calls).toHaveLength(1); // one call at a time: 3–5 wait for the first
    calls[0].answer();
    await expect(Promise.all(first)).resolves.toEqual(['row 1', 'row 2']);
    await turn();
    expect(calls.map((c) => c.requests)).toEqual([
      [1, 2],
      [3, 4, 5],
    ]);
    calls[1].answer();
    await expect(Promise.all(later)).resolves.toEqual(['row 3', 'row 4', 'row 5']);
  });

  it('a lone result goes at once', async () => {
    const { calls, send } = controlledSend();
    const recorder = new ResultRecorder(send);
    const row = recorder.record(7);
    await turn();
    expect(calls.map((c) => c.requests)).toEqual([[7]]);
    calls[0].answer();
    await expect(row).resolves.toBe('row 7');
  });

  it('a failed batch is sent again one result at a time, so one bad result fails alone', async () => {
    const { calls, send } = controlledSend();
    const recorder = new ResultRecorder(send);
    const rows = [recorder.record(1), recorder.record(2), recorder.record(3)].map((p) =>
      p.then(
        (row) => row,
        (error: Error) => error.message,
      ),
    );
    await turn();
    calls[0].fail();
    await turn();
    expect(calls.slice(1).map((c) => c.requests)).toEqual([[1], [2], [3]]);
    calls[1].answer();
    calls[2].fail();
    calls[3].answer();
    await expect(Promise.all(rows)).resolves.toEqual(['row 1', 'failed 2', 'row 3']);
  });

  it('sends a busy result again alone, waiting, while the next batches go on', async () => {
    const { calls, send } = controlledSend();
    const recorder = new ResultRecorder(send, (row) => row === 'busy');
    const first = [recorder.record(1), recorder.record(2)];
    await turn();
    calls[0].answer(['row 1', 'busy']);
    await expect(first[0]).resolves.toBe('row 1');
    const next = recorder.record(3);
    await turn();
    // 2 goes alone and waits for its line; 3 does not wait for 2.
    expect(calls.slice(1).map((c) => [c.requests, c.wait])).toEqual([
      [[2], true],
      [[3], false],
    ]);
    calls[2].answer();
    await expect(next).resolves.toBe('row 3');
    calls[1].answer();
    await expect(first[1]).resolves.toBe('row 2');
  });

  it('refuses an answer that does not have one row per result', async () => {
    const { calls, send } = controlledSend();
    const recorder = new ResultRecorder(send);
    const row = recorder.record(1);
    await turn();
    calls[0].answer([]);
    await expect(row).rejects.toThrow('recorded 0 results for 1');
  });
});
