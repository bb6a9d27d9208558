// Monitors pages: confirm destructive forms, show the channel fields of the chosen kind.
// A static file (no inline script): the pages keep working without it.
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  function showKindFields(form) {
    var select = form.querySelector("select[name=kind]");
    if (!select) {
      return;
    }
    var kind = select.value;
    form.querySelectorAll("[data-for-kind]").forEach(function (block) {
      var kinds = block.getAttribute("data-for-kind").split(" ");
      block.hidden = kind !== "" && kinds.indexOf(kind) === -1;
    });
  }

  function init() {
    document.querySelectorAll("[data-channel-form]").forEach(function (form) {
      showKindFields(form);
      form.addEventListener("change", function (event) {
        if (event.target.name === "kind") {
          showKindFields(form);
        }
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
