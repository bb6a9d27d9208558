/* A <select data-autosubmit> submits its form when changed (the project and language switchers).
 * Here rather than an inline onchange handler: the Content-Security-Policy allows no inline script.
 * Without JavaScript each form keeps its <noscript> button. */
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var field = event.target;
    if (!field || !field.form || !field.matches("select[data-autosubmit]")) return;
    if (field.form.requestSubmit) field.form.requestSubmit();
    else field.form.submit();
  });
})();
