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
    window.Plotly.newPlot(el, fig.data || [], fig.layout || {}, CONFIG);
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
        if (plots[i].offsetParent !== null) window.Plotly.Plots.resize(plots[i]);
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
