// Helpdesk UI glue. No inline scripts anywhere (the CSP forbids them): behaviour lives here.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // Every htmx request carries the CSRF token (Flask-WTF reads X-CSRFToken).
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRFToken"] = csrfToken();
  });

  // Server errors on htmx requests: show a toast instead of failing silently.
  document.addEventListener("htmx:responseError", function (event) {
    var toast = document.getElementById("toast");
    if (!toast) return;
    var status = event.detail.xhr.status;
    toast.textContent = status === 403 ? "You are not allowed to do that." :
      status === 422 || status === 400 ? "Please check the highlighted fields." :
      "Something went wrong (" + status + "). Try again.";
    toast.className = "show";
    setTimeout(function () { toast.className = ""; }, 4000);
  });

  // Confirmation prompts declared in markup: data-confirm="Are you sure?"
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var message = form.getAttribute && form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  }, true);

  // "Select all" checkboxes for bulk actions: data-check-all="name-of-checkboxes"
  document.addEventListener("change", function (event) {
    var name = event.target.getAttribute && event.target.getAttribute("data-check-all");
    if (!name) return;
    document.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (box) {
      box.checked = event.target.checked;
    });
  });

  // Keyboard shortcuts declared in markup: data-shortcut="r" on a button or link.
  // Ignored while typing in a field. "?" toggles the help overlay (#shortcut-help).
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || event.target.isContentEditable) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (event.key === "?") {
      var help = document.getElementById("shortcut-help");
      if (help) help.hidden = !help.hidden;
      return;
    }
    var target = document.querySelector('[data-shortcut="' + CSS.escape(event.key) + '"]');
    if (!target) return;
    event.preventDefault();
    if (target.tagName === "TEXTAREA" || target.tagName === "INPUT") target.focus();
    else target.click();
  });
})();
