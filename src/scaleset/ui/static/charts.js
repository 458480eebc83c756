/* Inline SVG charts of a run: its batches as bars against time, and each gate's values
   against its threshold. Drawn with DOM calls (no chart library, no inline style). */
"use strict";

window.scalesetCharts = (() => {
  const ui = window.scaleset;
  const { s, h } = ui;
  const WIDTH = 820;
  const LEFT = 150;
  const RIGHT = 16;

  function ms(iso) { return iso ? Date.parse(iso) : NaN; }

  function ticks(start, end, count) {
    const out = [];
    for (let i = 0; i <= count; i++) out.push(start + (end - start) * i / count);
    return out;
  }

  function timeAxis(svg, start, end, y, height) {
    const x = (t) => LEFT + (WIDTH - LEFT - RIGHT) * (t - start) / Math.max(1, end - start);
    const span = (end - start) / 1000;
    ticks(start, end, 5).forEach((t, i) => {
      svg.append(s("line", { class: "gridline", x1: x(t), x2: x(t), y1: 4, y2: y }));
      const seconds = (t - start) / 1000;
      // The first tick says when the run started; the others how long after.
      const label = i === 0 ? ui.time(new Date(start).toISOString())
        : "+" + (span < 30 ? seconds.toFixed(1) + " s" : ui.duration(seconds));
      svg.append(s("text", { x: x(t), y: y + 14, "text-anchor": i === 0 ? "start" : i === 5 ? "end" : "middle" },
                   label));
    });
    svg.append(s("line", { class: "axis", x1: LEFT, x2: WIDTH - RIGHT, y1: y, y2: y }));
    return x;
  }

  /**
   * Batches against time. `run`: {startTime, endTime, batches: [{index, start, end,
   * instanceIds}], batchesTotal}; `now`: the server's time (ISO).
   */
  function timeline(container, run, now) {
    if (!run) {
      ui.replace(container, h("p", { class: "chart-empty" }, "No run to draw yet."));
      return;
    }
    const batches = run.batches || [];
    const rows = Math.max(batches.length, run.batchesTotal || 0, 1);
    const start = ms(run.startTime);
    const live = !run.endTime;
    const current = live ? ms(now) || Date.now() : ms(run.endTime);
    // A live run's axis reaches a little past now, so its open batch grows into view.
    const end = Math.max(current + (live ? Math.max(5000, (current - start) * 0.25) : 0),
                         ...batches.map((b) => ms(b.end) || 0), start + 1000);
    const rowHeight = 24;
    const axisY = rows * rowHeight + 10;
    const summary = batches.map((b) => "batch " + (b.index + 1) + " (" +
      (b.instanceIds || []).length + " instances) " +
      (b.end ? "took " + ui.duration((ms(b.end) - ms(b.start)) / 1000)
             : "running for " + ui.duration((ms(now) - ms(b.start)) / 1000))).join("; ");
    const svg = s("svg", { viewBox: "0 0 " + WIDTH + " " + (axisY + 22), role: "img",
                           "aria-label": "Batches of the run against time: " + (summary || "none started") });
    const x = timeAxis(svg, start, end, axisY, rows * rowHeight);
    for (let i = 0; i < rows; i++) {
      const batch = batches[i];
      const y = 6 + i * rowHeight;
      const label = "Batch " + (i + 1) + (batch ? " · " + (batch.instanceIds || []).length
        + " inst." : " · pending");
      svg.append(s("text", { x: LEFT - 6, y: y + 13, "text-anchor": "end" }, label));
      if (!batch) continue;
      const bStart = ms(batch.start);
      const bEnd = ms(batch.end) || current;
      const bar = s("rect", { class: batch.end ? "bar" : "bar open", x: x(bStart), y: y,
                              width: Math.max(3, x(bEnd) - x(bStart)), height: rowHeight - 8,
                              rx: 2 });
      bar.append(s("title", {}, label + ": " + ui.time(batch.start) + " – " +
                   (batch.end ? ui.time(batch.end) : "running") + " · instances " +
                   (batch.instanceIds || []).join(", ")));
      svg.append(bar);
      svg.append(s("text", { x: Math.min(x(bEnd) + 4, WIDTH - RIGHT - 60), y: y + 13 },
                   batch.end ? ui.duration((ms(batch.end) - bStart) / 1000) : "running…"));
    }
    if (live) {
      svg.append(s("line", { class: "now", x1: x(current), x2: x(current), y1: 0, y2: axisY }));
      svg.append(s("text", { x: x(current) + 3, y: axisY - 3 }, "now"));
    }
    ui.replace(container, svg);
  }

  /** Gate values (GateEvaluated events: data.gate, value, threshold, passed) over time. */
  function gates(container, run, events, now) {
    const byGate = new Map();
    for (const e of events) {
      if (e.kind !== "GateEvaluated" || !e.data || !e.data.gate) continue;
      if (!byGate.has(e.data.gate)) byGate.set(e.data.gate, []);
      byGate.get(e.data.gate).push(e);
    }
    if (!run || byGate.size === 0) {
      ui.replace(container, h("p", { class: "chart-empty" },
        "No gate evaluated yet in this run: each batch's start and end records the gates."));
      return;
    }
    const start = ms(run.startTime);
    const end = Math.max(ms(run.endTime) || ms(now) || Date.now(),
                         ...events.map((e) => ms(e.time)), start + 1000);
    const charts = [];
    let series = 0;
    for (const [gate, points] of byGate) {
      const threshold = Number(points[points.length - 1].data.threshold);
      const top = Math.min(100, Math.max(10, threshold * 1.5,
                                         ...points.map((p) => Number(p.data.value) * 1.2)));
      const plotTop = 18, plotBottom = 90;
      const y = (v) => plotBottom - (plotBottom - plotTop) * Math.min(v, top) / top;
      const last = points[points.length - 1];
      const label = gate + ": now " + last.data.value + "% against " + threshold + "%";
      const svg = s("svg", { viewBox: "0 0 " + WIDTH + " " + (plotBottom + 22), role: "img",
        "aria-label": label + " (" + points.length + " evaluations, " +
          points.filter((p) => !p.data.passed).length + " breached)" });
      const x = timeAxis(svg, start, end, plotBottom, plotBottom);
      svg.append(s("text", { x: LEFT - 6, y: plotTop + 4, "text-anchor": "end" }, top.toFixed(0) + "%"));
      svg.append(s("text", { x: LEFT - 6, y: plotBottom - 2, "text-anchor": "end" }, "0%"));
      svg.append(s("line", { class: "threshold", x1: LEFT, x2: WIDTH - RIGHT,
                             y1: y(threshold), y2: y(threshold) }));
      svg.append(s("text", { x: WIDTH - RIGHT - 4, y: Math.max(y(threshold) - 4, 11),
                             "text-anchor": "end" }, "threshold " + threshold + "%"));
      const cls = "series-" + (series++ % 2);
      const d = points.map((p, i) => (i ? "L" : "M") + x(ms(p.time)).toFixed(1) + " " +
                                    y(Number(p.data.value)).toFixed(1)).join(" ");
      svg.append(s("path", { class: "line " + cls, d }));
      for (const p of points) {
        const dot = s(p.data.passed ? "circle" : "rect", p.data.passed
          ? { class: cls, cx: x(ms(p.time)), cy: y(Number(p.data.value)), r: 3.5 }
          : { class: "breach", x: x(ms(p.time)) - 4, y: y(Number(p.data.value)) - 4,
              width: 8, height: 8 });
        dot.append(s("title", {}, ui.time(p.time) + ": " + p.message));
        svg.append(dot);
      }
      charts.push(h("p", { class: "chart-title" }, h("strong", {}, gate), " — " +
        points.length + " evaluations, now " + last.data.value + "% (threshold " + threshold +
        "%)" + (points.some((p) => !p.data.passed) ? "; breached at the red squares" : "")), svg);
    }
    ui.replace(container, charts);
  }

  return { timeline, gates };
})();
