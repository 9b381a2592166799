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
    var ingestCard = document.querySelector("[data-live-ingest]");
    poll(section.getAttribute("data-live-overview"), Math.max(POLL_MS * 3, 2000), function (data) {
      showError(errorBox, data.error);
      if (ingestCard && data.ingest) updateIngest(ingestCard, data.ingest);
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

  // -- ingest: events per minute (our own SVG, no library), consumer, queue, lag, dead letters --
  var SVG_NS = "http://www.w3.org/2000/svg";
  var CHART = { width: 720, height: 220, left: 52, right: 10, top: 14, bottom: 30 };

  function svgEl(name, attrs, text) {
    var el = document.createElementNS(SVG_NS, name);
    Object.keys(attrs || {}).forEach(function (key) { el.setAttribute(key, attrs[key]); });
    if (text != null) el.textContent = text;
    return el;
  }

  // The smallest 1, 2 or 5 times a power of ten at or above n: round numbers on the y axis.
  function niceCeiling(n) {
    if (n <= 1) return 1;
    var power = Math.pow(10, Math.floor(Math.log10(n)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * power >= n) return steps[i] * power;
    return 10 * power;
  }

  // One bar per minute (oldest left, the current minute right), each with a <title> as its
  // tooltip and a full-height hover target; y axis 0 / half / top, x labels every 15 minutes.
  function drawTimeseries(svg, points) {
    var c = CHART;
    var plotW = c.width - c.left - c.right, plotH = c.height - c.top - c.bottom;
    var most = points.reduce(function (m, p) { return Math.max(m, p.count); }, 0);
    var top = niceCeiling(most);
    var slot = points.length ? plotW / points.length : plotW;
    var parts = [];
    (top % 2 ? [0, top] : [0, top / 2, top]).forEach(function (value) {
      var y = c.top + plotH - (value / top) * plotH;
      parts.push(svgEl("line", { "class": "ts-grid", x1: c.left, x2: c.width - c.right, y1: y, y2: y }));
      parts.push(svgEl("text", { "class": "ts-axis ts-y", x: c.left - 6, y: y + 4, "text-anchor": "end" },
        formatNumber(value)));
    });
    var bars = svgEl("g", { "class": "ts-bars" });
    points.forEach(function (p, i) {
      var x = c.left + i * slot;
      var h = (p.count / top) * plotH;
      var group = svgEl("g", { "class": "ts-minute", "data-minute": p.minute, "data-count": p.count });
      group.appendChild(svgEl("title", {}, p.title));
      group.appendChild(svgEl("rect", { "class": "ts-hit", x: x, y: c.top, width: slot, height: plotH }));
      group.appendChild(svgEl("rect", { "class": "ts-bar", x: x + slot * 0.12, y: c.top + plotH - h,
        width: Math.max(slot * 0.76, 1), height: h }));
      bars.appendChild(group);
      if (i % 15 === 0 || i === points.length - 1) {
        parts.push(svgEl("text", { "class": "ts-axis ts-x", x: x + slot / 2, y: c.height - c.bottom + 16,
          "text-anchor": i === points.length - 1 ? "end" : "middle" }, p.label));
      }
    });
    parts.push(bars);
    parts.push(svgEl("line", { "class": "ts-baseline", x1: c.left, x2: c.width - c.right,
      y1: c.top + plotH, y2: c.top + plotH }));
    svg.replaceChildren.apply(svg, parts);
    var total = points.reduce(function (sum, p) { return sum + p.count; }, 0);
    svg.setAttribute("aria-label", "Events per minute over the last hour: " + formatNumber(total) +
      " in total, at most " + formatNumber(most) + " in one minute");
  }

  function updateIngest(card, view) {
    showError(card.querySelector("[data-ingest-error]"), view.error);
    card.querySelectorAll("[data-ingest-field]").forEach(function (el) {
      var value = view[el.getAttribute("data-ingest-field")];
      el.textContent = value == null ? "—" : value;
    });
    var consumer = card.querySelector('[data-ingest-field="consumer"]');
    if (consumer) {
      consumer.className = "badge " + (view.consumer_ok ? "state-ok" : "state-down");
      consumer.setAttribute("data-ok", JSON.stringify(view.consumer_ok));
    }
    var svg = card.querySelector("[data-timeseries]");
    if (svg && (view.points.length || !view.error)) drawTimeseries(svg, view.points);
    var empty = card.querySelector("[data-timeseries-empty]");
    if (empty) empty.hidden = view.last_hour > 0 || !!view.error;
  }

  function initialIngest(card) {
    var data = card.querySelector("script[data-ingest-initial]");
    try { return data ? JSON.parse(data.textContent) : null; } catch (e) { return null; }
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
    document.querySelectorAll("[data-live-ingest]").forEach(function (card) {
      var view = initialIngest(card);
      if (view) updateIngest(card, view);
    });
    document.querySelectorAll("[data-live-overview]").forEach(liveOverview);
  });
})();
