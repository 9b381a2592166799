// Live updates for the console: small polling of the UI's own JSON endpoints (never the Replay
// API directly: the API key stays on the server). The pages work without this script; it only
// keeps figures fresh and lets cancel/resume act without a full reload.
(function () {
  "use strict";

  var POLL_MS = parseInt(document.body.getAttribute("data-poll-ms"), 10) || 1000;

  function fetchJson(url, options) {
    options = options || {};
    options.headers = Object.assign({ Accept: "application/json" }, options.headers || {});
    options.credentials = "same-origin";
    return fetch(url, options).then(function (response) {
      return response.json().catch(function () {
        return { error: "The UI answered " + response.status + " without JSON." };
      });
    });
  }

  // Poll while the tab is visible; one request at a time, so a slow API never piles them up.
  function poll(url, every, apply) {
    var stopped = false;
    function tick() {
      if (stopped) return;
      if (document.hidden) { setTimeout(tick, every); return; }
      fetchJson(url)
        .then(function (data) { if (apply(data) === false) stopped = true; })
        .catch(function () { apply({ error: "The management UI cannot be reached." }); })
        .then(function () { if (!stopped) setTimeout(tick, every); });
    }
    setTimeout(tick, every);
  }

  function showError(box, message) {
    if (!box) return;
    box.textContent = message || "";
    box.hidden = !message;
  }

  // -- replay jobs ---------------------------------------------------------------------------
  function setField(root, name, job) {
    root.querySelectorAll('[data-field="' + name + '"]').forEach(function (el) {
      if (el.closest("[data-job-id]") !== root && !root.matches(".job-detail")) return;
      switch (name) {
        case "percent": el.value = job.percent; el.textContent = job.percent_text; break;
        case "state": el.textContent = job.state;
          el.className = "badge state-" + job.state + (el.classList.contains("big") ? " big" : ""); break;
        case "error": el.textContent = job.error || ""; el.hidden = !job.error; break;
        case "reconnecting": el.textContent = job.reconnecting || ""; el.hidden = !job.reconnecting; break;
        case "notice": el.textContent = job.notice || ""; el.hidden = !job.notice; break;
        case "link": el.href = jobBase() + job.id; break;
        case "short_id": el.textContent = job.id.slice(0, 8); break;
        case "confirmed": el.textContent = formatNumber(job.confirmed); break;
        default: el.textContent = job[name] == null ? "—" : job[name];
      }
    });
  }

  var FIELDS = ["percent", "percent_text", "state", "error", "reconnecting", "notice", "link", "short_id", "summary", "target",
    "progress_text", "throughput_text", "started_at", "ended_at", "created_at", "duration_text", "confirmed"];

  function jobBase() { return document.body.getAttribute("data-replays-base") || "/replays/"; }

  function formatNumber(n) {
    return (n || 0).toLocaleString("en-US").replace(/,/g, "\u202f");
  }

  function updateJob(root, job) {
    root.setAttribute("data-job-id", job.id);
    root.setAttribute("data-state", job.state);
    FIELDS.forEach(function (name) { setField(root, name, job); });
    root.querySelectorAll("form[data-action]").forEach(function (form) {
      var action = form.getAttribute("data-action");
      form.action = jobBase() + job.id + "/" + action;
      form.hidden = action === "cancel" ? !job.can_cancel : !job.can_resume;
    });
  }

  function liveJobsTable(table) {
    var tbody = table.querySelector("tbody");
    var wrap = table.closest(".card") || document;
    var template = wrap.querySelector("template.job-template");
    var empty = wrap.querySelector("[data-empty]");
    var errorBox = wrap.querySelector(".live-error");
    poll(table.getAttribute("data-live-jobs"), POLL_MS, function (data) {
      if (data.error || !data.jobs) {
        showError(errorBox, data.error);
        if (empty) empty.hidden = true;
        return;
      }
      showError(errorBox, "");
      var rows = {};
      tbody.querySelectorAll("tr.job").forEach(function (row) { rows[row.getAttribute("data-job-id")] = row; });
      data.jobs.forEach(function (job) {
        var row = rows[job.id];
        if (!row) {
          row = template.content.firstElementChild.cloneNode(true);
          bindActions(row);
        }
        delete rows[job.id];
        updateJob(row, job);
        tbody.appendChild(row);  // keeps the API's order (newest first)
      });
      Object.keys(rows).forEach(function (id) { rows[id].remove(); });
      if (empty) empty.hidden = data.jobs.length > 0;
    });
  }

  function liveJobDetail(section) {
    var errorBox = section.querySelector(".live-error");
    poll(section.getAttribute("data-live-job"), POLL_MS, function (data) {
      if (data.error || !data.job) { showError(errorBox, data.error); return; }
      showError(errorBox, "");
      updateJob(section, data.job);
    });
  }

  // Cancel / resume through fetch: the form's own CSRF token goes along in the body.
  function bindActions(root) {
    root.querySelectorAll("form[data-action]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var button = form.querySelector("button");
        var owner = form.closest("[data-job-id]");
        var errorBox = (form.closest(".card") || document).querySelector(".live-error");
        button.disabled = true;
        fetchJson(form.action, { method: "POST", body: new FormData(form) })
          .then(function (data) {
            if (data.job) { updateJob(owner, data.job); showError(errorBox, ""); }
            else showError(errorBox, data.error || "The request failed.");
          })
          .catch(function () { showError(errorBox, "The management UI cannot be reached."); })
          .then(function () { button.disabled = false; });
      });
    });
  }

  // -- overview ------------------------------------------------------------------------------
  function liveOverview(section) {
    var total = section.querySelector("[data-total]");
    var typeCount = section.querySelector("[data-type-count]");
    var chart = section.querySelector("[data-chart]");
    var chartEmpty = section.querySelector("[data-chart-empty]");
    var ready = section.querySelector("[data-ready]");
    var errorBox = section.querySelector("[data-overview-error]");
    poll(section.getAttribute("data-live-overview"), Math.max(POLL_MS * 3, 2000), function (data) {
      showError(errorBox, data.error);
      if (data.total != null) total.textContent = data.total_text;
      if (data.archive) {
        section.querySelectorAll("[data-archive-field]").forEach(function (el) {
          var value = data.archive[el.getAttribute("data-archive-field")];
          el.textContent = value == null ? "—" : value;
        });
      }
      if (data.chart && (data.chart.length || !data.error)) {
        typeCount.textContent = data.chart.length;
        chart.replaceChildren.apply(chart, data.chart.map(function (row) {
          var li = document.createElement("li");
          var label = document.createElement("span");
          label.className = "chart-label"; label.textContent = row.event_type;
          var bar = document.createElement("progress");
          bar.className = "chart-bar"; bar.max = 100; bar.value = row.width; bar.setAttribute("aria-hidden", "true");
          var count = document.createElement("span");
          count.className = "chart-count"; count.textContent = row.count_text;
          li.append(label, bar, count);
          return li;
        }));
        chartEmpty.hidden = data.chart.length > 0 || !!data.error;
      }
      if (data.ready) {
        ready.replaceChildren.apply(ready, Object.keys(data.ready).sort().map(function (part) {
          var li = document.createElement("li");
          var state = data.ready[part];
          li.className = state === "ok" ? "ok" : "down";
          var dot = document.createElement("span"); dot.className = "dot"; dot.setAttribute("aria-hidden", "true");
          var text = document.createElement("span");
          var name = document.createElement("strong"); name.textContent = part;
          text.append(name, document.createTextNode(": " + state));
          li.append(dot, text);
          return li;
        }));
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table[data-live-jobs]").forEach(function (table) {
      bindActions(table);
      liveJobsTable(table);
    });
    document.querySelectorAll("[data-live-job]").forEach(function (section) {
      bindActions(section);
      liveJobDetail(section);
    });
    document.querySelectorAll("[data-live-overview]").forEach(liveOverview);
  });
})();
