// The charts of pacscopy's HTML pages, drawn as SVG from the page's #report-data:
// text only through textContent, no innerHTML.
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var PALETTE = ["#2458a6", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#8e44ad", "#f0e442",
                 "#16a085", "#c0392b"];
  var OTHER = "other";  // the modalities beyond the palette, in one grey segment
  var SEVERITY = {error: "#c0392b", warning: "#d68910", info: "#2e86c1"};
  var DISPOSITION = {send: "#1e8449", hold: "#d68910", quarantine: "#c0392b", skip: "#7f8c8d", blocked: "#6c3483"};
  // the reconciliation's final states: verified, excluded with a reason, anything else is a problem (red)
  var FINAL_STATE = {verified: "#1e8449", excluded_corrupt: "#8d6e63", excluded_held: "#d68910",
                     excluded_blocked: "#6c3483", excluded_decision: "#7f8c8d"};

  function el(name, attrs, parent, text) {
    var node = document.createElementNS(NS, name);
    for (var k in attrs) { if (Object.prototype.hasOwnProperty.call(attrs, k)) node.setAttribute(k, attrs[k]); }
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function fmt(n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ","); }
  function size(svg, w, h) { svg.setAttribute("viewBox", "0 0 " + w + " " + h); svg.setAttribute("width", w);
                             svg.setAttribute("height", h); }
  function empty(svg, message) { size(svg, 600, 60); el("text", {x: 8, y: 34, "class": "muted"}, svg, message); }
  // An axis for counts from 0 to at least v: about four round, whole-number steps.
  function axis(v) {
    if (!(v > 0)) return {max: 1, step: 1};
    var raw = v / 4, p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
    var step = Math.max(1, (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p);
    return {max: Math.ceil(v / step) * step, step: step};
  }
  function bar(parent, x, y, w, h, color, tip) {
    var r = el("rect", {"class": "bar", x: x, y: y, width: Math.max(w, 0), height: Math.max(h, 0), fill: color}, parent);
    el("title", {}, r, tip);
    return r;
  }

  // Horizontal bars: items [{label, value, color, tip}] or [{label, value, parts, text}].
  function hbars(svg, items, unit) {
    items.forEach(function (d) { if (d.label.length > 40) d.label = d.label.slice(0, 39) + "\u2026"; });
    var labelW = 12 + 7 * Math.max.apply(null, items.map(function (d) { return d.label.length; }));
    var W = Math.max(560, labelW + 320), rowH = 26, top = 6, H = top + items.length * rowH + 24;
    size(svg, W, H);
    var ax = axis(Math.max.apply(null, items.map(function (d) { return d.value; }))), max = ax.max;
    var x0 = labelW, plotW = W - labelW - 60;
    for (var t = 0; t <= max; t += ax.step) {
      var gx = x0 + plotW * t / max;
      el("line", {"class": "grid", x1: gx, x2: gx, y1: top, y2: H - 20}, svg);
      el("text", {x: gx, y: H - 6, "text-anchor": "middle", "class": "muted"}, svg, fmt(t));
    }
    items.forEach(function (d, i) {
      var y = top + i * rowH, x = x0;
      el("text", {x: labelW - 8, y: y + rowH / 2 + 4, "text-anchor": "end"}, svg, d.label);
      // one bar, or a bar of parts side by side (d.parts: [{value, color, name}])
      (d.parts || [{value: d.value, color: d.color}]).forEach(function (p) {
        var w = plotW * p.value / max;
        bar(svg, x, y + 4, w, rowH - 8, p.color,
            p.name ? d.label + " · " + p.name + ": " + fmt(p.value) + " " + unit
                   : d.tip || (d.label + ": " + fmt(d.value) + " " + unit));
        x += w;
      });
      el("text", {x: x + 6, y: y + rowH / 2 + 4, "class": "muted"}, svg, d.text || fmt(d.value));
    });
  }

  function color(m, k) { return m === OTHER ? "#95a5a6" : PALETTE[k % PALETTE.length]; }

  // Vertical stacked bars: one bar per category, one segment per series value.
  function stacked(svg, categories, series, values, unit) {
    var W = 960, left = 48, right = 12, top = 20, plotH = 240, legendRow = 20;
    // the legend wraps: lay it out first to know the height
    var legend = [], lx = left, ly = 0;
    series.forEach(function (m, k) {
      var w = 34 + 7 * m.length;
      if (lx + w > W - right && lx > left) { lx = left; ly += legendRow; }
      legend.push({m: m, k: k, x: lx, y: ly});
      lx += w;
    });
    var H = top + plotH + 36 + ly + legendRow;
    size(svg, W, H);
    var totals = categories.map(function (c) {
      return series.reduce(function (s, m) { return s + (values[c][m] || 0); }, 0);
    });
    var ax = axis(Math.max.apply(null, totals)), max = ax.max, plotW = W - left - right;
    for (var t = 0; t <= max; t += ax.step) {
      var gy = top + plotH - plotH * t / max;
      el("line", {"class": "grid", x1: left, x2: W - right, y1: gy, y2: gy}, svg);
      el("text", {x: left - 6, y: gy + 4, "text-anchor": "end", "class": "muted"}, svg, fmt(t));
    }
    el("line", {"class": "axis", x1: left, x2: W - right, y1: top + plotH, y2: top + plotH}, svg);
    var slot = plotW / categories.length, bw = Math.min(56, slot * 0.7);
    var every = Math.ceil(48 / slot);  // label every n-th bar so that labels do not collide
    categories.forEach(function (c, i) {
      var x = left + slot * i + (slot - bw) / 2, y = top + plotH;
      series.forEach(function (m, k) {
        var v = values[c][m] || 0;
        if (!v) return;
        var h = plotH * v / max;
        y -= h;
        bar(svg, x, y, bw, h, color(m, k), c + " · " + m + ": " + fmt(v) + " " + unit);
      });
      if (slot >= 40) {
        el("text", {x: x + bw / 2, y: y - 4, "text-anchor": "middle", "class": "muted"}, svg, fmt(totals[i]));
      }
      if (i % every === 0) {
        el("text", {x: x + bw / 2, y: top + plotH + 16, "text-anchor": "middle"}, svg, c);
      }
    });
    legend.forEach(function (l) {
      var y = top + plotH + 36 + l.y;
      el("rect", {"class": "swatch", x: l.x, y: y, width: 12, height: 12, fill: color(l.m, l.k)}, svg);
      el("text", {x: l.x + 17, y: y + 10}, svg, l.m);
    });
  }

  var draw = {
    studies_per_year: function (svg) {
      var rows = data.studies_per_year_modality;
      if (!rows.length) return empty(svg, "no studies in the index");
      var categories = [], values = {}, bySeries = {};
      rows.forEach(function (r) { bySeries[r.modality] = (bySeries[r.modality] || 0) + r.studies; });
      var series = Object.keys(bySeries).sort(function (a, b) { return bySeries[b] - bySeries[a] || (a < b ? -1 : 1); });
      if (series.length > PALETTE.length) {
        series = series.slice(0, PALETTE.length - 1).concat([OTHER]);
      }
      rows.forEach(function (r) {
        if (!(r.year in values)) { values[r.year] = {}; categories.push(r.year); }
        var m = series.indexOf(r.modality) >= 0 ? r.modality : OTHER;
        values[r.year][m] = (values[r.year][m] || 0) + r.studies;
      });
      stacked(svg, categories, series, values, "studies");
    },
    findings: function (svg) {
      if (!data.checks_run) return empty(svg, "checks have not been run");
      if (!data.findings.length) return empty(svg, "no findings");
      hbars(svg, data.findings.map(function (f) {
        return {label: f.check_id, value: f.files, color: SEVERITY[f.severity] || "#7f8c8d",
                tip: f.check_id + " (" + f.severity + "): " + fmt(f.files) + " files, " + fmt(f.instances) + " instances"};
      }), "files");
    },
    dispositions: function (svg) {
      if (!data.checks_run) return empty(svg, "checks have not been run");
      if (!data.dispositions.length) return empty(svg, "the plan is empty");
      hbars(svg, data.dispositions.map(function (d) {
        return {label: d.disposition, value: d.instances, color: DISPOSITION[d.disposition] || "#7f8c8d",
                tip: d.disposition + ": " + fmt(d.instances) + " instances (" + fmt(d.decided) + " decided)"};
      }), "instances");
    },
    manifest_locations: function (svg) {
      var rows = data.manifest_locations || [];
      if (!rows.length) return empty(svg, "no locations in the manifest");
      hbars(svg, rows.map(function (r) {
        return {label: String(r.location), value: r.known, text: fmt(r.found) + " / " + fmt(r.known),
                parts: [{value: r.found, color: "#1e8449", name: "found"},
                        {value: r.missing, color: "#c0392b", name: "missing (no file: restore that volume)"},
                        {value: r.deleted, color: "#7f8c8d", name: "deleted"}]};
      }), "instances");
    },
    final_states: function (svg) {
      if (!data.final_states.length) return empty(svg, "no instances in the index");
      hbars(svg, data.final_states.map(function (d) {
        return {label: d.state, value: d.instances, color: FINAL_STATE[d.state] || "#c0392b"};
      }), "instances");
    }
  };

  var drawn = 0;
  Array.prototype.forEach.call(document.querySelectorAll("svg.chart"), function (svg) {
    var f = draw[svg.getAttribute("data-chart")];
    if (f) { f(svg); drawn += 1; }
  });
  document.body.dataset.chartsDrawn = String(drawn);
})();
