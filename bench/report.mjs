import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderChart } from './chart.mjs';
import { median, ROOT } from './lib/util.mjs';

/**
 * What a bench run measured, summed up: each row's median and its ratio to the reference of its
 * group, the table, the targets docs/benchmarks.md sets and the floors of the contract on this
 * machine. `P` is the run's sizes; `systems` the systems the references and targets name.
 */
export function summarise(rows, P, { raw, rawRecorded, graphileDefault }) {
  for (const r of rows) r.median = median(r.values);
  const rowOf = (scenario, variant, system) =>
    rows.find(
      (r) => r.scenario === scenario && r.variant.startsWith(variant) && r.system === system,
    );
  const get = (scenario, variant, system) => rowOf(scenario, variant, system)?.median ?? null;
  const ratio = (a, b) => (a != null && b != null && b !== 0 ? a / b : null);
  /** Arrivals out of order summed over a row's rounds ('' when the row has none recorded). */
  const outOfOrder = (r) =>
    ['ordered delivery', 'hot partition'].includes(r.scenario) && r.extras.length > 0
      ? String(r.extras.reduce((n, e) => n + (e.violations ?? 0), 0))
      : '';
  const outOfOrderTotal = (scenario, variant, system) => {
    const row = rowOf(scenario, variant, system);
    return row && outOfOrder(row) !== '' ? Number(outOfOrder(row)) : null;
  };

  // Each row's ratio is against the reference of its group: the raw ceiling (delivery, latency;
  // with ten webhooks, where there is no raw row, the floor: raw + durable record),
  // the raw sequential loop (hot), the plain INSERT (SQL publish), API with 0 webhooks (API).
  for (const r of rows) {
    let ref = null;
    if (r.scenario === 'ordered delivery' && r.variant.includes(' webhooks'))
      ref = get(r.scenario, r.variant, rawRecorded.name);
    else if (r.scenario === 'ordered delivery' || r.scenario === 'latency')
      ref = get(r.scenario, r.variant, raw.name);
    else if (r.scenario === 'hot partition')
      ref = get(r.scenario, r.variant, 'raw sequential loop');
    else if (r.scenario === 'publish' && r.variant.startsWith('sql'))
      ref = get(r.scenario, r.variant, 'plain');
    else if (r.scenario === 'publish') ref = get(r.scenario, r.variant, '0 webhooks');
    else if (r.scenario === 'order under 1% failures' && r.unit === 'msg/s')
      ref = get(r.scenario, r.variant, 'ours');
    else if (r.scenario === 'scale')
      ref = get(r.scenario, r.variant.replace(/,.*$/, ', 10,000'), 'ours');
    else if (r.scenario === 'batch publish') ref = get(r.scenario, 'API single', 'ours');
    else if (r.scenario === 'retention' && /, (before|during|after)$/.test(r.variant))
      ref = get(r.scenario, r.variant.replace(/, (during|after)$/, ', before'), 'ours');
    r.ratio = r.scenario === 'latency' ? null : ratio(r.median, ref);
    r.diff = r.scenario === 'latency' && ref != null && r.median != null ? r.median - ref : null;
  }

  const fmt = (x, unit) =>
    x == null
      ? 'n/a'
      : unit === 'ms'
        ? x.toFixed(1)
        : x >= 100
          ? Math.round(x).toLocaleString('en')
          : x.toFixed(unit === 'count' ? 0 : 1);
  /** A delivery row's arrivals out of order: the sum over its rounds (0 is the promise). */
  const lines = [];
  lines.push(
    `| scenario | variant | system | median | unit | vs reference | out of order | rounds |`,
  );
  lines.push(`|---|---|---|---:|---|---:|---:|---|`);
  for (const r of rows) {
    const vs =
      r.ratio != null
        ? `${r.ratio.toFixed(2)}x`
        : r.diff != null
          ? `${r.diff >= 0 ? '+' : ''}${r.diff.toFixed(1)} ms`
          : '';
    lines.push(
      `| ${r.scenario} | ${r.variant} | ${r.system} | ${fmt(r.median, r.unit)} | ${r.unit} | ${vs} | ${outOfOrder(r)} | ${r.values.map((v) => fmt(v, r.unit)).join(' / ')} |`,
    );
  }

  const d1 = `${P.deliveryMessages} msgs / 100 partitions, 1 worker`;
  const d2 = `${P.deliveryMessages} msgs / 100 partitions, 2 worker`;
  const tenWebhooks = (workers) =>
    `${P.deliveryMessages / 10} msgs x 10 webhooks / 100 partitions, ${workers} worker`;
  const hot = (system) => get('hot partition', '', system);
  // The targets are against the floor of the contract (the raw loop committing the records
  // every delivered message needs) and against graphile-worker with its defaults, which keep
  // order: both measured in the same run.
  const oneWebhook = [
    [d1, '1 worker'],
    [d2, '2 workers'],
  ];
  const targets = [
    ...[
      ...oneWebhook,
      [tenWebhooks(1), '1 worker, ten webhooks'],
      [tenWebhooks(2), '2 workers, ten webhooks'],
    ].flatMap(([v, workers]) => [
      [
        `ordered delivery, ${workers}: ours / raw + durable record >= 0.85`,
        ratio(get('ordered delivery', v, 'ours'), get('ordered delivery', v, rawRecorded.name)),
        0.85,
      ],
      [
        `ordered delivery, ${workers}: ours / graphile-worker (defaults) >= 2`,
        ratio(get('ordered delivery', v, 'ours'), get('ordered delivery', v, graphileDefault.name)),
        2,
      ],
      [
        `ordered delivery, ${workers}: ours out of order = 0`,
        outOfOrderTotal('ordered delivery', v, 'ours'),
        0,
      ],
    ]),
    ...oneWebhook.map(([v, workers]) => [
      `ordered delivery, ${workers}: via PgBouncer / direct >= 0.8`,
      ratio(get('ordered delivery', v, 'ours via PgBouncer'), get('ordered delivery', v, 'ours')),
      0.8,
    ]),
    [
      'hot partition: ours / raw + durable record >= 0.85',
      ratio(hot('ours'), hot(rawRecorded.name)),
      0.85,
    ],
    ['hot partition: ours out of order = 0', outOfOrderTotal('hot partition', '', 'ours'), 0],
    [
      'latency p50: ours - raw <= 5 ms',
      (() => {
        const a = get('latency', 'publish→arrival p50', 'ours');
        const b = get('latency', 'publish→arrival p50', raw.name);
        return a != null && b != null ? a - b : null;
      })(),
      -5,
    ],
    [
      'SQL publish, 1-row tx, 1 webhook: ours / messages + 1 delivery, no triggers >= 0.85',
      ratio(
        get('publish', 'sql 1-row', '1 webhooks'),
        get('publish', 'sql 1-row', 'messages + 1 delivery, no triggers'),
      ),
      0.85,
    ],
    [
      'order under failure: ours out-of-order arrivals = 0',
      get('order under 1% failures', `${P.failureMessages} msgs, arrivals`, 'ours'),
      0,
    ],
    [
      'claim at 1,000,000 / at 10,000 pending <= 2',
      ratio(
        get('scale', 'claim query, 1,000,000', 'ours'),
        get('scale', 'claim query, 10,000', 'ours'),
      ),
      -2,
    ],
  ];
  const targetLines = targets
    .filter(([, v]) => v != null)
    .map(([name, v, goal]) => {
      const met = goal < 0 ? v <= -goal : goal === 0 ? v === 0 : v >= goal;
      return `- ${met ? 'met' : 'MISSED'}: ${name} (${Number.isInteger(v) ? v : v.toFixed(2)})`;
    });

  // The most a queue that keeps DESIGN's promise and records reaches on this machine, in the
  // targets' terms: the raw loop committing those records after each 2xx against raw HTTP, and
  // a message's row and its delivery's, without triggers, against the plain INSERT. A target
  // above its floor is out of reach here whatever the queue does.
  const floors = [
    ...oneWebhook.map(([v, workers]) => [
      `ordered delivery, ${workers}: raw + durable record / raw HTTP`,
      ratio(get('ordered delivery', v, rawRecorded.name), get('ordered delivery', v, raw.name)),
    ]),
    [
      'hot partition: raw + durable record / raw sequential loop',
      ratio(hot(rawRecorded.name), hot('raw sequential loop')),
    ],
    [
      'SQL publish, 1-row tx, 1 webhook: message + delivery rows without triggers / plain INSERT',
      ratio(
        get('publish', 'sql 1-row', 'messages + 1 delivery, no triggers'),
        get('publish', 'sql 1-row', 'plain'),
      ),
    ],
  ];
  const floorLines = floors
    .filter(([, v]) => v != null)
    .map(([name, v]) => `- ${name}: ${v.toFixed(2)}`);

  return { lines, targetLines, floorLines };
}

/**
 * Writes bench/results/<stamp>.json and .svg, and for a complete run (not `partial`) also
 * latest.svg and latest.md, the chart and table docs/benchmarks.md shows.
 */
export async function saveResults(report, { started, partial, log }) {
  const { command, machine, rounds, rows, table, targets, floors } = report;
  const dir = join(ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  writeFileSync(join(dir, `${stamp}.json`), JSON.stringify(report, null, 2));
  const svg = await renderChart(
    rows.filter((r) => !(r.scenario === 'order under 1% failures' && r.unit === 'count')),
    `${command} — medians of ${rounds} rounds; ${machine}`,
  );
  writeFileSync(join(dir, `${stamp}.svg`), svg);
  if (partial) {
    log(
      `\nwrote bench/results/${stamp}.json and .svg (a partial run: latest.svg and latest.md, ` +
        'which docs/benchmarks.md shows, keep the last complete run)',
    );
  } else {
    writeFileSync(join(dir, 'latest.svg'), svg);
    writeFileSync(
      join(dir, 'latest.md'),
      `${command}\n\n${machine}\n\n${table.join('\n')}\n\n${targets.join('\n')}\n\n` +
        `Floors of the contract here:\n${floors.join('\n')}\n`,
    );
    log(`\nwrote bench/results/${stamp}.json and .svg, latest.svg and latest.md`);
  }
}
