// Segment builder: show the operators and inputs that fit each condition's field.
// Progressive enhancement only; the server validates every row either way.
(function () {
  "use strict";

  function sync(row) {
    var field = row.querySelector("[data-cond-field]");
    var op = row.querySelector("[data-cond-op]");
    if (!field || !op) return;
    var selected = field.options[field.selectedIndex];
    var kind = selected ? selected.getAttribute("data-kind") : "number";
    var name = field.value;
    Array.prototype.forEach.call(op.options, function (option) {
      var optionKind = option.getAttribute("data-kind");
      option.hidden = optionKind !== null && optionKind !== kind;
    });
    if (op.selectedOptions.length && op.selectedOptions[0].hidden) op.value = "";
    var value = row.querySelector("[data-cond-value]");
    var category = row.querySelector("[data-cond-category]");
    var days = row.querySelector("[data-cond-days]");
    if (value) value.hidden = kind === "window";
    if (category) category.hidden = name !== "purchased_category_within_days";
    if (days) days.hidden = !(kind === "window" || name === "orders_within_days");
    if (value) value.placeholder = kind === "flag" ? "true or false" : (kind === "choice" ? "value, value" : "value");
  }

  function init(root) {
    Array.prototype.forEach.call(root.querySelectorAll("[data-cond]"), function (row) {
      sync(row);
      var field = row.querySelector("[data-cond-field]");
      if (field) field.addEventListener("change", function () { sync(row); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSwap", function (event) { init(event.target); });
})();
