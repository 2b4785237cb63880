// The inbox refreshes itself when a case of the unit changes: it polls a marker and, when the
// marker moves, reloads the list part of the page with the same filters (no full reload).
(function () {
  "use strict";
  var body = document.getElementById("inbox-body");
  var news = document.getElementById("inbox-news");
  if (!body) return;
  var EVERY = 5000;

  function refresh() {
    var url = location.pathname + (location.search ? location.search + "&" : "?") + "partial=1";
    return fetch(url, { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        var known = {};
        body.querySelectorAll("tr[data-case]").forEach(function (tr) { known[tr.dataset.case] = 1; });
        body.innerHTML = html;
        body.querySelectorAll("tr[data-case]").forEach(function (tr) {
          if (!known[tr.dataset.case]) tr.classList.add("fresh");
        });
        news.hidden = false;
        news.textContent = news.dataset.text || (document.documentElement.lang === "en"
          ? "New or changed cases: the list is up to date" : "有新的办件或变化, 已刷新");
      });
  }

  function poll() {
    fetch("/inbox/marker", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (answer) {
        if (answer.marker !== body.dataset.marker) {
          body.dataset.marker = answer.marker;
          return refresh();
        }
      })
      .catch(function () { /* offline for a moment: try again at the next tick */ })
      .then(function () { setTimeout(poll, EVERY); });
  }
  setTimeout(poll, EVERY);
})();
