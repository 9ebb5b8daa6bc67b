// Clarion web UI: the only script. It adds new alerts to the alerts list
// as they arrive (Server-Sent Events from /alerts/stream). Every page works
// without it; the list is then current as of its last load.
//
// Each event carries a table row that the server rendered with the same
// template as the page, so every text in it was escaped there; the row is
// parsed inside an inert <template> and only that row is inserted.
(function () {
  "use strict";
  var body = document.getElementById("alerts-body");
  if (!body || !body.dataset.stream || !window.EventSource) {
    return;
  }
  var status = document.getElementById("live-status");
  var arrived = 0;

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  var source = new EventSource(body.dataset.stream);
  source.addEventListener("alert", function (ev) {
    var tpl = document.createElement("template");
    tpl.innerHTML = ev.data;
    var row = tpl.content.querySelector("tr[data-alert-id]");
    if (!row || body.querySelector('tr[data-alert-id="' + CSS.escape(row.dataset.alertId) + '"]')) {
      return;
    }
    var empty = document.getElementById("no-alerts");
    if (empty) {
      empty.remove();
    }
    row.classList.add("arrived");
    body.insertBefore(row, body.firstChild);
    arrived++;
    say(arrived === 1 ? "1 new alert arrived." : arrived + " new alerts arrived.");
  });
  source.addEventListener("overflow", function () {
    say("More alerts arrived than fit on this page. Reload the page to see them all.");
  });
  source.addEventListener("error", function () {
    if (source.readyState === EventSource.CLOSED) {
      say("Live updates stopped. Reload the page to see new alerts.");
    }
  });
})();
