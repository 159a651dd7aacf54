// The moderation queue, enhanced: decisions happen in place and the place is kept.
// j/k move between comments, a/r/s act on the current one (r opens the reasons menu when the
// site has reasons; its number keys choose), z undoes, x selects for a bulk action, ? shows
// help. An action's form is sent with fetch; the card and the tab counts are updated from the
// answer, the next comment becomes current and the live region says what happened. Without
// this script every form still works: the server redirects back to the next comment.
// Shortcuts never fire while typing in a field or with a modifier key held.
(function () {
  "use strict";
  var current = null;
  var sending = Promise.resolve();
  var announcer = document.getElementById("queue-status");

  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function all() { return Array.prototype.slice.call(document.querySelectorAll(".queue-item")); }

  function open(item) {
    return !item.classList.contains("queue-item--done") && !item.hasAttribute("aria-busy");
  }

  // The nearest comment still to decide from `from` in direction `step` (from the ends if none).
  function nearest(from, step) {
    var items = all();
    var i = from ? items.indexOf(from) : (step > 0 ? -1 : items.length);
    for (i += step; i >= 0 && i < items.length; i += step) {
      if (open(items[i])) return items[i];
    }
    return null;
  }

  function focusItem(item) {
    if (!item) return;
    current = item;
    all().forEach(function (each) { each.classList.toggle("queue-item--current", each === item); });
    item.focus();
  }

  function announce(message, failed) {
    if (!announcer) return;
    announcer.classList.toggle("notice--error", !!failed);
    announcer.textContent = message;
  }

  function ensureCurrent() {
    if (current && open(current) && document.body.contains(current)) return current;
    var next = nearest(current, 1) || nearest(current, -1);
    if (!next) { announce("There are no more comments to decide on this page."); return null; }
    focusItem(next);
    return next;
  }

  function menuOf(item) { return item && item.querySelector("details[data-reasons]"); }

  function press(action) {
    var item = ensureCurrent();
    if (!item) return;
    var menu = action === "reject" && menuOf(item);
    if (menu) {
      menu.open = true;
      var first = menu.querySelector("button");
      if (first) first.focus();
      return;
    }
    var button = item.querySelector('button[data-action="' + action + '"]');
    if (button) button.click();
  }

  function chooseReason(number) {
    var menu = document.querySelector("details[data-reasons][open]");
    var button = menu && menu.querySelectorAll("button")[number - 1];
    if (!button) return false;
    button.click();
    return true;
  }

  function undoForm() {
    var form = document.querySelector("form.undo");
    return form && !form.hidden ? form : null;
  }

  function offerUndo(undo) {
    var form = document.querySelector("form.undo");
    if (!form) return;
    if (!undo) { form.hidden = true; return; }
    form.action = undo.action;
    form.setAttribute("data-until", undo.until);
    form.hidden = false;
    window.clearTimeout(offerUndo.timer);
    offerUndo.timer = window.setTimeout(function () { form.hidden = true; },
      Math.max(0, undo.until * 1000 - Date.now()));
  }

  function update(form, item, body, failed) {
    announce(body.error ? body.error.message : body.message, failed);
    Object.keys(body.counts || {}).forEach(function (status) {
      var count = document.querySelector('[data-count="' + status + '"] .count');
      if (count) count.textContent = "(" + body.counts[status] + ")";
    });
    var old = body.id && document.getElementById("queue-" + body.id);
    var fresh = null;
    if (old && body.card) {
      var holder = document.createElement("ol");
      holder.innerHTML = body.card;
      fresh = holder.querySelector(".queue-item");
      var hadFocus = old.contains(document.activeElement);
      old.replaceWith(fresh);
      if (current === old || current === null) current = fresh;
      if (hadFocus) focusItem(fresh);
    } else if (item) {
      item.removeAttribute("aria-busy");
    }
    if (form.classList.contains("undo")) {
      offerUndo(null);
      if (fresh) focusItem(fresh);
    } else if (!failed) {
      offerUndo(body.undo);
    }
  }

  function plainSubmit(form, submitter) {
    if (submitter && submitter.name) {
      var field = document.createElement("input");
      field.type = "hidden";
      field.name = submitter.name;
      field.value = submitter.value;
      form.appendChild(field);
    }
    HTMLFormElement.prototype.submit.call(form);
  }

  function act(form, submitter) {
    var item = form.closest(".queue-item");
    var data = new FormData(form);
    if (submitter && submitter.name) data.append(submitter.name, submitter.value);
    if (item) {
      var menu = menuOf(item);
      if (menu) menu.open = false;
      var wasCurrent = item === current || item.contains(document.activeElement);
      item.setAttribute("aria-busy", "true");
      if (wasCurrent) {
        current = item;
        var next = nearest(item, 1) || nearest(item, -1);
        if (next) focusItem(next); else item.focus();
      }
    }
    // One request at a time, in the order decided, so the counts and messages arrive in order.
    sending = sending.then(function () {
      return window.fetch(form.action, {
        method: "POST",
        body: data,
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      }).then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        if (type.indexOf("application/json") !== 0) throw new Error("not JSON");
        return response.json().then(function (body) { update(form, item, body, !response.ok); });
      }).catch(function () {
        plainSubmit(form, submitter);  // signed out, or the network failed: the page way
      });
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute("data-act") || !window.fetch || !window.FormData) return;
    event.preventDefault();
    act(form, event.submitter);
  });

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event.target)) return;
    var dialog = document.getElementById("shortcuts");
    switch (event.key) {
      case "j": focusItem(nearest(current, 1) || current); break;
      case "k": focusItem(nearest(current, -1) || current); break;
      case "a": press("approve"); break;
      case "r": press("reject"); break;
      case "s": press("spam"); break;
      case "z":
        var undo = undoForm();
        if (!undo) return;
        undo.requestSubmit();
        break;
      case "x":
        var item = ensureCurrent();
        var box = item && item.querySelector('input[type="checkbox"]');
        if (box) { box.checked = !box.checked; box.dispatchEvent(new Event("change", { bubbles: true })); }
        break;
      case "Escape":
        var menu = document.querySelector("details[data-reasons][open]");
        if (!menu) return;
        menu.open = false;
        focusItem(menu.closest(".queue-item"));
        break;
      case "?":
        if (dialog && dialog.showModal && !dialog.open) dialog.showModal();
        break;
      default:
        if (!/^[1-9]$/.test(event.key) || !chooseReason(Number(event.key))) return;
    }
    event.preventDefault();
  });

  document.addEventListener("focusin", function (event) {
    var item = event.target.closest && event.target.closest(".queue-item");
    if (item) current = item;
  });

  // Select all on this page, and how many are selected (announced politely).
  var selectAll = document.getElementById("select-all");
  var selectedCount = document.querySelector("[data-selected-count]");
  function boxes() {
    return Array.prototype.slice.call(document.querySelectorAll('.queue-item input[name="ids"]'));
  }
  function countSelected() {
    var all = boxes();
    var n = all.filter(function (box) { return box.checked; }).length;
    if (selectedCount) {
      selectedCount.hidden = false;
      selectedCount.textContent = n === 1 ? "1 comment selected" : n + " comments selected";
    }
    if (selectAll) {
      selectAll.checked = n > 0 && n === all.length;
      selectAll.indeterminate = n > 0 && n < all.length;
    }
  }
  if (selectAll && boxes().length) {
    selectAll.closest("[data-select-all]").hidden = false;
    selectAll.addEventListener("change", function () {
      boxes().forEach(function (box) { box.checked = selectAll.checked; });
      countSelected();
    });
    document.addEventListener("change", function (event) {
      if (event.target.name === "ids") countSelected();
    });
    countSelected();
  }

  var focused = document.querySelector(".queue-item[autofocus]");
  if (focused) focusItem(focused);

  var undo = document.querySelector("form.undo[data-until]");
  if (undo && !undo.hidden) {
    offerUndo({ action: undo.action, until: Number(undo.getAttribute("data-until")) });
  }
})();
