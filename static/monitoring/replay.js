/* Replay: arrow keys step, autoplay, and the "tick two runs to compare" picker.
 *
 * A step the person takes (a click, an arrow key) is a history entry, like any boosted link.
 * Autoplay moves through the steps without one per step: it loads the next step into #panel and
 * replaces the current address, so Back leaves the run instead of rewinding it step by step.
 */
(function () {
  "use strict";

  var timer = null;
  var stepping = false; // true while autoplay itself issues a request

  function speed() {
    var select = document.querySelector("[data-autoplay-speed]");
    return parseFloat((select && select.value) || window.__replaySpeed || "1") || 1;
  }

  function label(button, playing) {
    button.textContent = button.getAttribute(playing ? "data-label-stop" : "data-label-play");
  }

  function stop() {
    if (timer) { clearTimeout(timer); timer = null; }
    document.querySelectorAll("[data-autoplay]").forEach(function (b) { label(b, false); });
  }

  function tick() {
    var next = document.querySelector("[data-step-next]");
    if (!next || !window.htmx) { stop(); return; }
    timer = setTimeout(function () {
      if (!timer) return;
      var url = next.getAttribute("href");
      stepping = true;
      var request = window.htmx.ajax("GET", url, { target: "#panel", swap: "innerHTML" });
      stepping = false;
      request.then(function () {
        if (!timer) return;
        window.history.replaceState(window.history.state, "", url);
        var button = document.querySelector("[data-autoplay]");
        if (button) label(button, true);
        var select = document.querySelector("[data-autoplay-speed]");
        if (select && window.__replaySpeed) select.value = window.__replaySpeed;
        tick();
      });
    }, 1500 / speed());
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-autoplay]");
    if (button) {
      if (timer) { stop(); return; }
      label(button, true);
      tick();
      return;
    }
    // Any other click on a step link or a control stops autoplay: the person has taken over.
    if (timer && event.target.closest("[data-player] a, [data-steps] a")) stop();
  });

  document.addEventListener("change", function (event) {
    if (event.target.matches("[data-autoplay-speed]")) window.__replaySpeed = event.target.value;
    if (event.target.matches("[data-compare-run]")) syncPicker(event.target.closest("[data-compare-picker]"));
  });

  // ← and → step (not while typing in the re-run editor or a field).
  document.addEventListener("keydown", function (event) {
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    var field = event.target.closest && event.target.closest("input, textarea, select, [contenteditable]");
    if (field) return;
    var link = document.querySelector(event.key === "ArrowLeft" ? "[data-step-prev]" : "[data-step-next]");
    if (!link) return;
    event.preventDefault();
    stop();
    link.click();
  });

  // The compare picker: at most two ticked; the button says how many and works at exactly two.
  function syncPicker(form) {
    if (!form) return;
    var boxes = form.querySelectorAll("[data-compare-run]");
    var ticked = 0;
    boxes.forEach(function (b) { if (b.checked) ticked++; });
    boxes.forEach(function (b) {
      b.disabled = !b.checked && ticked >= 2;
      var row = b.closest("tr");
      if (row) row.classList.toggle("picked", b.checked);
    });
    var count = form.querySelector("[data-compare-count]");
    if (count) count.textContent = "(" + ticked + "/2)";
    var submit = form.querySelector("[data-compare-submit]");
    if (submit) submit.disabled = ticked !== 2;
  }

  function syncAll(root) {
    var scope = root && root.querySelectorAll ? root : document;
    scope.querySelectorAll("[data-compare-picker]").forEach(syncPicker);
  }

  document.addEventListener("DOMContentLoaded", function () { syncAll(document); });
  document.addEventListener("htmx:load", function (event) { syncAll(event.detail && event.detail.elt); });
  // Leaving the run (another tab, Back, any request of the page's own) ends autoplay.
  document.addEventListener("htmx:historyRestore", stop);
  document.addEventListener("htmx:beforeRequest", function () { if (timer && !stepping) stop(); });
})();
