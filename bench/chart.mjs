// The results chart: one bar per system and scenario, each scenario on its own scale, made by
// vega-lite and rendered to SVG by vega's headless renderer (no browser, no canvas needed).
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';

/**
 * @param {{scenario: string, variant: string, system: string, median: number, unit: string}[]} rows
 * @param {string} title
 */
export async function renderChart(rows, title) {
  const data = rows
    .filter((r) => r.median != null && Number.isFinite(r.median))
    .map((r) => ({ ...r, panel: `${r.scenario}: ${r.variant} (${r.unit})` }));
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, anchor: 'start', fontSize: 13 },
    data: { values: data },
    facet: {
      row: {
        field: 'panel',
        type: 'nominal',
        title: null,
        header: { labelAngle: 0, labelAlign: 'left', labelLimit: 420 },
      },
    },
    spec: {
      width: 420,
      height: { step: 14 },
      mark: { type: 'bar', tooltip: true },
      encoding: {
        y: { field: 'system', type: 'nominal', title: null, sort: null },
        x: { field: 'median', type: 'quantitative', title: null },
        color: { field: 'system', type: 'nominal', legend: { orient: 'top', title: null } },
      },
      layer: undefined,
    },
    resolve: { scale: { x: 'independent', y: 'independent' } },
    config: { font: 'sans-serif', view: { stroke: null } },
  };
  const compiled = vegaLite.compile(/** @type {any} */ (spec)).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  return view.toSVG();
}
