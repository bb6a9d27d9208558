/* Traces tab: the trace page's collapsible tree + waterfall and its span panel.
 *
 * Everything is delegated from `document`, so it keeps working on content htmx swaps in
 * (#panel, lazily loaded subtrees). The server renders the first levels of a tree; a collapsed
 * span's children are fetched the first time it is opened (`.../spans?parent=<id>`), and
 * collapsing only hides rows, so the DOM holds what was looked at, never the whole trace.
 */
(function () {
  "use strict";

  function depth(row) { return Number(row.dataset.depth || 0); }

  // Show or hide the rows below `row` that are its descendants, keeping collapsed subtrees closed.
  function setOpen(row, open) {
    row.dataset.open = open ? "1" : "0";
    var toggle = row.querySelector(".toggle");
    if (toggle) toggle.setAttribute("aria-expanded", open ? "true" : "false");
    var d = depth(row);
    var cut = Infinity; // depth of the nearest collapsed ancestor while walking down
    for (var r = row.nextElementSibling; r && depth(r) > d; r = r.nextElementSibling) {
      var rd = depth(r);
      if (!open) { r.hidden = true; continue; }
      if (rd <= cut) cut = Infinity;
      if (rd > cut) { r.hidden = true; continue; }
      r.hidden = false;
      if (r.dataset.open === "0") cut = rd;
    }
  }

  function childrenUrl(tree, row) {
    var q = new URLSearchParams({
      parent: row.dataset.span, depth: String(depth(row) + 1),
      t0: tree.dataset.t0, tn: tree.dataset.tn,
    });
    return tree.dataset.spansUrl + "?" + q.toString();
  }

  function toggle(row) {
    var tree = row.closest(".waterfall");
    var open = row.dataset.open !== "1";
    if (open && row.dataset.loaded === "0") {
      row.dataset.loaded = "1";
      row.dataset.open = "1";
      row.querySelector(".toggle").setAttribute("aria-expanded", "true");
      window.htmx.ajax("GET", childrenUrl(tree, row), { target: row, swap: "afterend" });
      return;
    }
    setOpen(row, open);
  }

  function select(link) {
    var row = link.closest(".span-row");
    var tree = link.closest(".waterfall");
    tree.querySelectorAll(".span-row.selected").forEach(function (r) { r.classList.remove("selected"); });
    row.classList.add("selected");
    var q = new URLSearchParams({ span: row.dataset.span, t0: tree.dataset.t0 });
    window.htmx.ajax("GET", tree.dataset.spansUrl + "?" + q.toString(), { target: "#span-panel", swap: "innerHTML" });
    // The address names the span, so a reload or a shared link opens it again.
    var url = new URL(window.location.href);
    url.searchParams.set("span", row.dataset.span);
    window.history.replaceState(window.history.state, "", url.toString());
  }

  document.addEventListener("click", function (ev) {
    var button = ev.target.closest(".waterfall .toggle");
    if (button) {
      ev.preventDefault();
      toggle(button.closest(".span-row"));
      return;
    }
    var link = ev.target.closest(".waterfall .span-link");
    if (link && window.htmx && ev.button === 0 && !ev.metaKey && !ev.ctrlKey && !ev.shiftKey && !ev.altKey) {
      ev.preventDefault();
      select(link);
      return;
    }
    // A click on a row's bar opens the span too.
    var track = ev.target.closest(".waterfall .span-row:not(.more) .wf-track");
    if (track && window.htmx) {
      var rowLink = track.parentElement.querySelector(".span-link");
      if (rowLink) select(rowLink);
    }
  });

  // Arrow keys on a toggle: right opens, left closes (treegrid convention).
  document.addEventListener("keydown", function (ev) {
    var button = ev.target.closest && ev.target.closest(".waterfall .toggle");
    if (!button || (ev.key !== "ArrowRight" && ev.key !== "ArrowLeft")) return;
    var row = button.closest(".span-row");
    var isOpen = row.dataset.open === "1";
    if ((ev.key === "ArrowRight") !== isOpen) { ev.preventDefault(); toggle(row); }
  });

  // The name column is as wide as the person last dragged it (kept in localStorage).
  var WIDTH_KEY = "apm-wf-name-width";

  function setNameWidth(tree, px) {
    // Leave the bars and durations room: 200 px, or a quarter of a phone's narrow tree.
    var max = Math.max(160, tree.clientWidth - Math.min(200, tree.clientWidth / 4));
    var width = Math.round(Math.min(Math.max(px, 120), max));
    tree.style.setProperty("--wf-name", width + "px");
    return width;
  }

  function restoreWidth(root) {
    var saved = Number(window.localStorage && localStorage.getItem(WIDTH_KEY));
    if (!saved || !root || !root.querySelectorAll) return;
    var trees = root.matches && root.matches(".waterfall") ? [root] : root.querySelectorAll(".waterfall");
    trees.forEach(function (tree) { setNameWidth(tree, saved); });
  }

  function remember(width) {
    try { localStorage.setItem(WIDTH_KEY, String(width)); } catch (err) { /* private mode */ }
  }

  document.addEventListener("pointerdown", function (ev) {
    var handle = ev.target.closest && ev.target.closest("[data-wf-resize]");
    if (!handle) return;
    ev.preventDefault();
    var tree = handle.closest(".waterfall");
    var left = tree.getBoundingClientRect().left;
    var width = 0;
    function move(e) { width = setNameWidth(tree, e.clientX - left); }
    function up() {
      document.removeEventListener("pointermove", move);
      document.removeEventListener("pointerup", up);
      tree.classList.remove("resizing");
      if (width) remember(width);
    }
    tree.classList.add("resizing");
    document.addEventListener("pointermove", move);
    document.addEventListener("pointerup", up);
  });

  document.addEventListener("keydown", function (ev) {
    var handle = ev.target.closest && ev.target.closest("[data-wf-resize]");
    if (!handle || (ev.key !== "ArrowRight" && ev.key !== "ArrowLeft")) return;
    ev.preventDefault();
    var tree = handle.closest(".waterfall");
    var name = tree.querySelector(".wf-head .wf-name");
    remember(setNameWidth(tree, name.getBoundingClientRect().width + (ev.key === "ArrowRight" ? 24 : -24)));
  });

  document.addEventListener("DOMContentLoaded", function () { restoreWidth(document); });

  // After a swap: the saved column width, and the selected span in view on a fresh trace page.
  document.addEventListener("htmx:load", function (ev) {
    var el = ev.detail && ev.detail.elt;
    if (!el || !el.querySelector) return;
    restoreWidth(el);
    var selected = el.matches && el.matches(".trace-page") ? el.querySelector(".span-row.selected") : null;
    if (selected && selected.scrollIntoView) selected.scrollIntoView({ block: "nearest" });
  });
})();
