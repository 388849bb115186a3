/* The hourly chart: the last 24 hours by vehicle type, kept as model.series and
 * drawn with the vendored Chart.js (a classic script the template loads first). */

import { $, HOUR, TYPES, capitalise, dayFormat, fullFormat, hourFormat, numberFormat, sum } from "./dom.js";
import { model } from "./model.js";

let chart = null;
let chartFrame = 0;

// Hours between two labels of the x axis: divisors of 24, so that local
// midnight is always labelled; the fewest that still leave each label room.
const TICK_STEPS = [1, 2, 3, 4, 6, 12];
const TICK_WIDTH_PX = 64;

export function setSeries(series) {
  const points = series.points || [];
  model.series = {
    starts: points.map((point) => Date.parse(point.start)),
    counts: Object.fromEntries(TYPES.map((type) => [type, points.map((p) => p.by_vehicle_type[type] || 0)])),
  };
  rollSeries(Date.now());
}

/** Slide the 24-hour window so its last bar is the current hour. */
export function rollSeries(now) {
  const { starts, counts } = model.series;
  let rolled = false;
  while (starts.length && now >= starts[starts.length - 1] + HOUR) {
    starts.push(starts[starts.length - 1] + HOUR);
    starts.shift();
    for (const type of TYPES) {
      counts[type].push(0);
      counts[type].shift();
    }
    rolled = true;
  }
  return rolled;
}

export function addToSeries(iso, type, delta) {
  rollSeries(Date.now());
  const { starts, counts } = model.series;
  const moment = Date.parse(iso);
  if (!starts.length || !(type in counts) || Number.isNaN(moment)) return;
  // Buckets are whole UTC hours, one after the other.
  const index = Math.floor((moment - starts[0]) / HOUR);
  if (index < 0 || index >= starts.length) return; // outside the last 24 hours
  counts[type][index] = Math.max(0, counts[type][index] + delta);
  scheduleChartRender();
}

export function seriesTotal() {
  return sum(TYPES.map((type) => sum(model.series.counts[type] || [])));
}

/** Create the chart; without Chart.js the page works on, with a note instead. */
export function startChart() {
  chart = makeChart();
}

/** The Chart.js instance, or null when the library did not load. */
export function currentChart() {
  return chart;
}

function makeChart() {
  const Chart = window.Chart;
  if (!Chart) {
    $("chart-note").textContent = "the chart library did not load";
    return null;
  }
  const css = getComputedStyle(document.documentElement);
  const cssVar = (name) => css.getPropertyValue(name).trim();
  Chart.defaults.color = cssVar("--muted");
  Chart.defaults.borderColor = cssVar("--line");
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  return new Chart($("hourly-chart"), {
    type: "bar",
    data: {
      labels: [],
      datasets: TYPES.map((type) => ({
        label: capitalise(type),
        data: [],
        backgroundColor: cssVar(`--type-${type}`) || "#9aa7b6",
        borderRadius: 2,
        stack: "detections",
      })),
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: { duration: 300 },
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { stacked: true, grid: { display: false }, ticks: { maxRotation: 0, autoSkip: false, callback: hourTick } },
        y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } },
      },
      plugins: {
        legend: { position: "bottom", labels: { boxWidth: 10, boxHeight: 10, padding: 14 } },
        tooltip: {
          filter: (item) => item.raw > 0,
          callbacks: {
            title: (items) => (items.length ? hourRange(model.series.starts[items[0].dataIndex]) : ""),
            footer: (items) => `Total: ${sum(items.map((item) => item.raw))}`,
          },
        },
      },
    },
  });
}

/** The x axis' label of bar `index` (`this` is the scale): its hour every few
 * local hours, and the day too at the first label and at each midnight, so the
 * axis says which day each stretch of bars belongs to. null: no label. */
function hourTick(index) {
  const { starts } = model.series;
  const room = Math.max(1, Math.floor(this.chart.width / TICK_WIDTH_PX));
  const step = TICK_STEPS.find((hours) => Math.ceil(starts.length / hours) <= room) ?? 12;
  const labelled = (start) => new Date(start).getHours() % step === 0;
  if (index >= starts.length || !labelled(starts[index])) return null;
  const moment = new Date(starts[index]);
  const first = starts.findIndex(labelled);
  return index === first || moment.getHours() === 0
    ? [hourFormat.format(moment), dayFormat.format(moment)]
    : hourFormat.format(moment);
}

function hourRange(start) {
  return `${fullFormat.format(new Date(start))} – ${hourFormat.format(new Date(start + HOUR))}`;
}

function scheduleChartRender() {
  // Bursts of events redraw once per frame, not once per event.
  if (chartFrame) return;
  chartFrame = requestAnimationFrame(() => {
    chartFrame = 0;
    renderChart();
  });
}

export function renderChart() {
  const { starts, counts } = model.series;
  const totals = starts.map((_, index) => sum(TYPES.map((type) => counts[type][index])));
  const busiest = totals.indexOf(Math.max(...totals));
  const total = sum(totals);
  $("chart-note").textContent =
    total > 0
      ? `${numberFormat.format(total)} in the last 24 h · busiest ${hourFormat.format(new Date(starts[busiest]))} (${totals[busiest]})`
      : "none in the last 24 hours";
  if (!chart) return;
  chart.data.labels = starts.map((start) => hourFormat.format(new Date(start)));
  TYPES.forEach((type, index) => {
    chart.data.datasets[index].data = counts[type].slice();
  });
  chart.update("none");
}
