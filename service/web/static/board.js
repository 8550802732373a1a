// Live board: fetch the changing part of the page every few seconds and swap it in.
// Without JavaScript the page still works; the "Refresh" link reloads it by hand.
(function () {
  "use strict";
  var box = document.querySelector("[data-live-url]");
  if (!box || !window.fetch) { return; }
  var url = box.getAttribute("data-live-url");
  var every = 1000 * (parseInt(box.getAttribute("data-poll-seconds"), 10) || 5);

  function update() {
    // Never pull the page out from under someone working inside it with the keyboard.
    if (document.hidden || box.contains(document.activeElement)) {
      window.setTimeout(update, every);
      return;
    }
    window.fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.status === 401) { window.location.reload(); return null; }
        return response.ok ? response.text() : null;
      })
      .then(function (html) { if (html) { box.innerHTML = html; } })
      .catch(function () { /* offline for a moment: try again next time */ })
      .then(function () { window.setTimeout(update, every); });
  }
  window.setTimeout(update, every);
})();
