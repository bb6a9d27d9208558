/* Draws every [data-chart] element from the figure JSON in the <script> whose id it names.
   The dashboard's panel is swapped by htmx, so charts are drawn on first load and after every swap,
   and the plots being swapped out are purged first (Plotly keeps listeners and state on the node). */
(function () {
  "use strict";

  var CONFIG = {
    responsive: true,
    displaylogo: false,
    displayModeBar: "hover",
    modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines"],
    toImageButtonOptions: { format: "png", scale: 2 },
  };
  var PHONE = "(max-width: 700px)";
  var TICK_PX = 56; // room a date tick label needs ("Dec 30", "12월 30일") so neighbours never run together

  function config() {
    // A phone has no hover: a tap would pin the mode bar over the legend, so it is left out there.
    if (!window.matchMedia || !window.matchMedia(PHONE).matches) return CONFIG;
    return Object.assign({}, CONFIG, { displayModeBar: false });
  }

  // Date axes get at most one tick per TICK_PX of plot width (the figure's own nticks is a desktop's).
  function fitDateTicks(el, layout) {
    var width = el.clientWidth - 80; // the house margins and the y axis' labels
    var update = {};
    var most = el.apmTicks || (el.apmTicks = {}); // the figure's own nticks, before any fitting
    Object.keys(layout).forEach(function (key) {
      var axis = layout[key];
      if (!/^xaxis\d*$/.test(key) || !axis || axis.type !== "date") return;
      if (most[key] === undefined) most[key] = axis.nticks || 10;
      var n = Math.max(2, Math.min(most[key], Math.floor(width / TICK_PX) + 1));
      if (axis.nticks !== n) update[key + ".nticks"] = axis.nticks = n;
    });
    return update;
  }

  // The Agent Flow Graph: plotly.js puts a node's label beside it at a fixed size, so narrow columns
  // make labels of neighbouring columns overlap. Measured after drawing, the plot is widened until no
  // two labels touch and none is cut at an edge; its card scrolls sideways (analytics.css).
  function labelBoxes(el) {
    var svg = el.querySelector(".main-svg");
    var nodes = el.querySelectorAll(".sankey-node");
    var out = [];
    for (var i = 0; i < nodes.length; i++) {
      var text = nodes[i].querySelector(".node-label");
      var rect = nodes[i].querySelector(".node-rect");
      if (!text || !rect || !text.textContent) continue;
      var b = text.getBoundingClientRect();
      out.push({ left: b.left, right: b.right, top: b.top, bottom: b.bottom, column: rect.getBoundingClientRect().left });
    }
    return { labels: out, frame: svg ? svg.getBoundingClientRect() : null };
  }

  function widening(el) {
    var found = labelBoxes(el), factor = 1, labels = found.labels, frame = found.frame;
    for (var i = 0; i < labels.length; i++) {
      var a = labels[i];
      if (frame && (a.left < frame.left || a.right > frame.right)) {
        var cut = Math.max(frame.left - a.left, a.right - frame.right) + 8;
        factor = Math.max(factor, 1 + cut / Math.max(frame.width, 1));
      }
      for (var j = 0; j < labels.length; j++) {
        var b = labels[j];
        var apart = Math.abs(b.column - a.column);
        if (i === j || b.column <= a.column || apart < 1) continue; // same column: the node padding keeps them apart
        if (a.bottom <= b.top || b.bottom <= a.top || a.right + 6 <= b.left) continue;
        factor = Math.max(factor, 1 + (a.right + 6 - b.left) / apart);
      }
    }
    return factor;
  }

  // Measured on a settled drawing only: after a resize plotly.js moves the nodes in a transition, so
  // the next check waits for it to end. Node heights do not depend on the width, so one widening
  // mostly suffices; a second catches what the snap arrangement moved.
  var SETTLE_MS = 900;

  function isSankey(el) {
    return !!(el.data && el.data.some(function (t) { return t.type === "sankey"; }));
  }

  function fitFlowLabels(el, rounds, done) {
    var factor = isSankey(el) ? widening(el) : 1;
    if (factor <= 1.001 || rounds <= 0) { done(); return; }
    el.style.minWidth = Math.ceil(el.getBoundingClientRect().width * Math.min(factor, 3) + 4) + "px";
    window.Plotly.Plots.resize(el).then(function () {
      setTimeout(function () { fitFlowLabels(el, rounds - 1, done); }, SETTLE_MS);
    });
  }

  function figureFor(el) {
    var source = document.getElementById(el.getAttribute("data-chart"));
    if (!source) return null;
    try {
      return JSON.parse(source.textContent);
    } catch (err) {
      return null;
    }
  }

  function draw(el) {
    if (el.getAttribute("data-drawn") === "1") return;
    var fig = figureFor(el);
    if (!fig) {
      el.classList.add("chart-failed");
      el.textContent = el.getAttribute("data-failed-text") || "This chart could not be drawn.";
      return;
    }
    if (el._fullLayout) window.Plotly.purge(el);
    // A definite height: with `responsive`, Plotly sizes the plot to its container on every resize.
    if (fig.layout && fig.layout.height) el.style.height = fig.layout.height + "px";
    el.setAttribute("data-drawn", "1");
    var layout = fig.layout || {};
    fitDateTicks(el, layout);
    window.Plotly.newPlot(el, fig.data || [], layout, config()).then(function () {
      fitFlowLabels(el, 2, function () { el.setAttribute("data-fitted", "1"); });
    });
  }

  function drawAll(root) {
    if (!window.Plotly) return; // plotly.min.js failed to load: leave the figure JSON alone
    var scope = root && root.querySelectorAll ? root : document;
    var nodes = scope.querySelectorAll("[data-chart]");
    if (scope.matches && scope.matches("[data-chart]")) draw(scope);
    for (var i = 0; i < nodes.length; i++) draw(nodes[i]);
  }

  function purgeAll(root) {
    if (!window.Plotly || !root || !root.querySelectorAll) return;
    var plots = root.querySelectorAll(".js-plotly-plot");
    for (var i = 0; i < plots.length; i++) window.Plotly.purge(plots[i]);
  }

  var resizeTimer = null;
  function resizeAll() {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      if (!window.Plotly) return;
      var plots = document.querySelectorAll(".js-plotly-plot");
      for (var i = 0; i < plots.length; i++) {
        var el = plots[i];
        if (el.offsetParent === null) continue;
        var ticks = fitDateTicks(el, el.layout || {});
        if (Object.keys(ticks).length) window.Plotly.relayout(el, ticks);
        window.Plotly.Plots.resize(el);
      }
    }, 120);
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:beforeSwap", function (evt) { purgeAll(evt.detail && evt.detail.target); });
  document.addEventListener("htmx:afterSwap", function (evt) { drawAll(evt.detail && evt.detail.target); });
  document.addEventListener("htmx:load", function (evt) { drawAll(evt.detail && evt.detail.elt); });
  window.addEventListener("resize", resizeAll);
  // Back/forward through htmx history restores a snapshot of the HTML: plot markup without Plotly's state.
  document.addEventListener("htmx:historyRestore", function () {
    var stale = document.querySelectorAll("[data-chart][data-drawn]");
    for (var i = 0; i < stale.length; i++) {
      stale[i].removeAttribute("data-drawn");
      stale[i].innerHTML = "";
    }
    drawAll(document);
  });

  window.apmCharts = { drawAll: drawAll, purgeAll: purgeAll };
})();
