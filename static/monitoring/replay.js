// Replay's autoplay: follow "Forward" at the chosen speed until the last step or a click on Stop.
(function () {
  let timer = null;
  function stop() {
    if (timer) { clearTimeout(timer); timer = null; }
    document.querySelectorAll("[data-autoplay]").forEach((b) => { b.textContent = "▶▶ Autoplay"; });
  }
  function tick() {
    const next = document.querySelector("[data-step-next]");
    if (!next) { stop(); return; }
    const speed = parseFloat((document.querySelector("[data-autoplay-speed]") || {}).value || "1");
    timer = setTimeout(() => { if (timer) { next.click(); } }, 1500 / speed);
  }
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-autoplay]");
    if (!button) return;
    if (timer) { stop(); return; }
    button.textContent = "■ Stop";
    tick();
  });
  // After each htmx swap the controls are new: keep playing if we were.
  document.addEventListener("htmx:afterSwap", () => {
    if (!timer) return;
    const button = document.querySelector("[data-autoplay]");
    if (button) button.textContent = "■ Stop";
    const speed = document.querySelector("[data-autoplay-speed]");
    if (speed && window.__replaySpeed) speed.value = window.__replaySpeed;
    tick();
  });
  document.addEventListener("change", (event) => {
    if (event.target.matches("[data-autoplay-speed]")) window.__replaySpeed = event.target.value;
  });
})();
