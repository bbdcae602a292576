// Tickets console behaviour: queue row cursor (j/k/o/x), composer modes and Ctrl+Enter,
// presence (viewing / replying) and swapping 422 validation responses. No inline scripts.
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  function typing(target) {
    var tag = (target.tagName || "").toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  // Validation errors (422) come back as the form with field messages: swap them in
  // instead of treating them as failures.
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.xhr.status === 422) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // An answer whose target has left the page (the agent opened a ticket while a queue
  // refresh was on its way) is not swapped: htmx would still apply its out-of-band parts to
  // the new page (htmx:oobErrorNoTarget #queue-views) and push the queue's URL over it.
  // htmx announces the swap on the (detached) target only, so listen there.
  function dropIfDetached(event) {
    var target = event.detail.target;
    if (target && !document.body.contains(target)) event.detail.shouldSwap = false;
  }
  document.addEventListener("htmx:beforeSend", function (event) {
    var target = event.detail.target;
    if (target && target.addEventListener) target.addEventListener("htmx:beforeSwap", dropIfDetached);
  });

  // --- queue: a keyboard cursor over the rows ------------------------------------------------
  // The cursor remembers the ticket, not the position, so a table refresh (search, bulk
  // action) keeps it on the same ticket when that ticket is still listed.
  var cursorTicket = null;

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("#queue-table tr.queue-row"));
  }

  function cursorIndex(all) {
    for (var i = 0; i < all.length; i++) {
      if (all[i].getAttribute("data-ticket-id") === cursorTicket) return i;
    }
    return -1;
  }

  function paintCursor(all, index) {
    all.forEach(function (row, i) { row.classList.toggle("is-cursor", i === index); });
    cursorTicket = index >= 0 ? all[index].getAttribute("data-ticket-id") : null;
    if (index >= 0) all[index].scrollIntoView({ block: "nearest" });
  }

  function moveCursor(step) {
    var all = rows();
    if (!all.length) return;
    var index = cursorIndex(all);
    index = index < 0 ? (step > 0 ? 0 : all.length - 1) : Math.max(0, Math.min(all.length - 1, index + step));
    paintCursor(all, index);
  }

  // After any swap has settled (htmx settles `class` too, which would wipe a class painted
  // on afterSwap), a new table repaints the cursor on its ticket, or drops it: a cursor
  // kept but not painted made the next "j" skip the first row.
  document.addEventListener("htmx:afterSettle", function () {
    if (!document.getElementById("queue-table")) return;
    var all = rows();
    var index = cursorIndex(all);
    if (index >= 0) paintCursor(all, index);
    else cursorTicket = null;
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (!document.getElementById("queue-table")) return;
    var all = rows();
    var row = all[cursorIndex(all)];
    if (event.key === "j") { event.preventDefault(); moveCursor(1); }
    else if (event.key === "k") { event.preventDefault(); moveCursor(-1); }
    else if ((event.key === "o" || event.key === "Enter") && row) {
      event.preventDefault();
      row.querySelector("a.queue-link").click();
    } else if (event.key === "x" && row) {
      event.preventDefault();
      var box = row.querySelector('input[name="ticket_ids"]');
      if (box) box.checked = !box.checked;
    }
  });

  // --- composer: reply / note modes, Ctrl+Enter sends --------------------------------------------
  function setMode(mode) {
    var composer = document.getElementById("composer");
    if (!composer) return;
    var radio = composer.querySelector('input[name="mode"][value="' + mode + '"]');
    if (radio) radio.checked = true;
    composer.classList.toggle("composer-note", mode === "note");
    composer.classList.toggle("composer-reply", mode !== "note");
    var hint = composer.querySelector(".composer-to");
    if (hint) hint.textContent = mode === "note" ? "Only agents see notes" : hint.getAttribute("data-to") || hint.textContent;
  }

  document.addEventListener("click", function (event) {
    var trigger = event.target.closest && event.target.closest("[data-composer-mode]");
    if (!trigger) return;
    event.preventDefault();
    setMode(trigger.getAttribute("data-composer-mode"));
    var body = document.getElementById("composer-body");
    if (body) body.focus();
  });

  document.addEventListener("change", function (event) {
    if (event.target.name === "mode" && event.target.closest("#composer")) setMode(event.target.value);
  });

  document.addEventListener("keydown", function (event) {
    if (event.target.id !== "composer-body") return;
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      var send = document.querySelector("#composer [data-composer-send]");
      if (send) send.click();
    }
  });

  // --- presence: tell the others whether I am replying --------------------------------------------
  function presence(replying) {
    var field = document.getElementById("presence-replying");
    var form = document.getElementById("presence-form");
    if (!field || !form || !window.htmx) return;
    var value = replying ? "1" : "0";
    if (field.value === value) return;
    field.value = value;
    window.htmx.trigger(form, "presence-change");
  }

  document.addEventListener("focusin", function (event) {
    if (event.target.id === "composer-body") presence(true);
  });
  document.addEventListener("focusout", function (event) {
    if (event.target.id === "composer-body") presence(event.target.value.trim() !== "");
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    // A sent message clears the composer: no longer replying, and the keyboard goes back
    // to the shortcuts (htmx would otherwise keep the focus in the new, empty composer).
    if (event.target && event.target.id === "thread") {
      var body = document.getElementById("composer-body");
      if (body && document.activeElement === body) body.blur();
      presence(false);
    }
  });

  window.addEventListener("pagehide", function () {
    var form = document.getElementById("presence-form");
    if (!form || !navigator.sendBeacon) return;
    var data = new FormData(form);
    data.set("leaving", "1");
    navigator.sendBeacon(form.getAttribute("action"), data);
  });
})();
