// Keyboard shortcuts for the moderation queue, and the undo button's timer.
// j/k move between comments, a/r/s act on the current one, x selects it for a bulk action,
// ? shows help. Shortcuts never fire while typing in a field or with a modifier key held.
(function () {
  "use strict";
  var items = Array.prototype.slice.call(document.querySelectorAll(".queue-item"));
  var current = -1;

  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function focusItem(index) {
    if (!items.length) return;
    current = Math.max(0, Math.min(items.length - 1, index));
    items.forEach(function (item, i) { item.classList.toggle("queue-item--current", i === current); });
    items[current].focus();
  }

  function press(action) {
    if (current < 0) focusItem(0);
    var button = items[current] && items[current].querySelector('button[data-action="' + action + '"]');
    if (button) button.click();
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event.target)) return;
    var dialog = document.getElementById("shortcuts");
    switch (event.key) {
      case "j": focusItem(current + 1); break;
      case "k": focusItem(current - 1); break;
      case "a": press("approve"); break;
      case "r": press("reject"); break;
      case "s": press("spam"); break;
      case "x":
        if (current < 0) focusItem(0);
        var box = items[current] && items[current].querySelector('input[type="checkbox"]');
        if (box) box.checked = !box.checked;
        break;
      case "?":
        if (dialog && dialog.showModal && !dialog.open) dialog.showModal();
        break;
      default: return;
    }
    event.preventDefault();
  });

  items.forEach(function (item, i) {
    item.addEventListener("focusin", function () { current = i; });
  });

  var undo = document.querySelector(".undo[data-until]");
  if (undo) {
    var left = Number(undo.getAttribute("data-until")) * 1000 - Date.now();
    window.setTimeout(function () { undo.hidden = true; }, Math.max(0, left));
  }
})();
