// The video desk lists incoming calls: it reloads the list part every few seconds.
(function () {
  "use strict";
  var queue = document.getElementById("video-queue");
  if (!queue) return;
  setInterval(function () {
    fetch("/video/queue", { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) { queue.innerHTML = html; })
      .catch(function () { /* the next round retries */ });
  }, 2000);
})();
