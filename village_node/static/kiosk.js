// The kiosk's pages work without this script; with it, syncing and the first download after
// enrolment run in the background while a progress bar follows them (/sync/progress).
(function () {
  "use strict";

  var bar = document.getElementById("sync-state");
  var LINK_CLASS = { online: "tag on", revoked: "tag bad" };

  function csrfOf(form) {
    var field = form.querySelector('input[name="_csrf_token"]');
    return field ? field.value : "";
  }

  function post(form) {
    return fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      headers: { Accept: "application/json", "X-CSRFToken": csrfOf(form) },
      credentials: "same-origin",
    });
  }

  function setText(id, text) {
    var element = document.getElementById(id);
    if (element) element.textContent = text;
  }

  function show(p) {
    var labels = document.body.dataset;
    var phase = labels[p.phase] || labels.busyLabel;
    var text = p.total ? phase + " " + p.done + "/" + p.total : phase;
    document.querySelectorAll(".sync-meter").forEach(function (meter) { meter.value = p.percent; });
    document.querySelectorAll(".sync-phase").forEach(function (span) { span.textContent = text; });
    var progress = document.getElementById("sync-progress");
    if (progress) progress.hidden = !p.busy;
    var link = document.getElementById("link");
    if (link) {
      link.textContent = p.link_label;
      link.className = LINK_CLASS[p.link] || "tag off";
    }
    setText("last-sync", p.last_sync);
    setText("waiting", String(p.waiting));
    var button = document.getElementById("sync-now");
    if (button) {
      button.disabled = p.busy;
      button.textContent = p.busy ? labels.busyLabel : labels.idleLabel;
    }
  }

  function finish(p) {
    var error = document.getElementById("sync-error");
    if (error) {
      error.hidden = !p.error;
      error.textContent = p.error;
    }
    var message = document.getElementById("sync-message");
    if (message && p.message) {
      message.hidden = false;
      message.className = "flash " + (p.error ? "error" : "ok");
      message.textContent = p.message + " ";
      if (!p.error && !document.querySelector("form[data-unsaved]")) {
        var again = document.createElement("a");
        again.href = location.pathname + location.search;
        again.textContent = document.documentElement.lang === "en" ? "Reload" : "刷新本页";
        message.appendChild(again);
      }
    }
  }

  // Follow the running sync until it ends, then call done with the last answer.
  function follow(done) {
    fetch("/sync/progress", { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (p) {
        show(p);
        if (p.busy) setTimeout(function () { follow(done); }, 500);
        else done(p);
      })
      .catch(function () { setTimeout(function () { follow(done); }, 2000); });
  }

  var syncForm = document.getElementById("sync-form");
  if (syncForm) {
    syncForm.addEventListener("submit", function (event) {
      event.preventDefault();
      document.getElementById("sync-now").disabled = true;
      post(syncForm)
        .then(function () { follow(finish); })
        .catch(function () { syncForm.submit(); });
    });
  }
  if (bar && bar.dataset.busy) follow(finish);

  // Enrolment: present the code, then show the first download before going to the login.
  var enrolForm = document.getElementById("enrol-form");
  if (enrolForm) {
    enrolForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = document.getElementById("enrol");
      var error = document.getElementById("enrol-error");
      var waiting = document.getElementById("enrol-progress");
      button.disabled = true;
      waiting.hidden = false;
      post(enrolForm)
        .then(function (r) { return r.json(); })
        .then(function (answer) {
          if (answer.error) {
            error.textContent = answer.error;
            error.hidden = false;
            waiting.hidden = true;
            button.disabled = false;
            return;
          }
          error.hidden = true;
          follow(function () { location.href = answer.next; });
        })
        .catch(function () { enrolForm.submit(); });
    });
  }
})();
