/* Reports the browser's time zone, so times are shown in it unless the person picked a zone (the
 * server keeps a picked zone over a reported one): once per browser, and again when the browser's
 * zone moved. When the page was rendered in another zone, reload once to show the right times. */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var body = document.body;
    if (!body || body.dataset.timeZoneChosen === "1" || !window.fetch || !window.Intl) return;
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (err) { return; }
    if (!zone || (body.dataset.timeZoneKnown === "1" && zone === body.dataset.timeZone)) return;
    var headers = {};
    try { headers = JSON.parse(body.getAttribute("hx-headers") || "{}"); } catch (err) { headers = {}; }
    var form = new URLSearchParams({ time_zone: zone, source: "browser" });
    fetch(body.dataset.preferencesUrl, { method: "POST", body: form, headers: headers, credentials: "same-origin" })
      .then(function (response) {
        if (response.ok) body.dataset.timeZoneKnown = "1";
        // Reload once at most: a browser that refuses cookies must not reload forever.
        if (response.ok && zone !== body.dataset.timeZone && !sessionStorage.getItem("apm-tz-reloaded")) {
          sessionStorage.setItem("apm-tz-reloaded", "1");
          window.location.reload();
        }
      })
      .catch(function () {});
  });
})();
