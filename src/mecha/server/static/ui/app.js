// Mecha's dashboard: live updates and the theme switch. Every page works without this file;
// it only saves reloading. No inline script anywhere (the Content-Security-Policy forbids it).
(function () {
  "use strict";
  var root = document.documentElement;
  var THEME_KEY = "mecha-theme";
  try {
    var saved = window.localStorage.getItem(THEME_KEY);
    if (saved === "dark" || saved === "light") root.setAttribute("data-theme", saved);
  } catch (e) { /* storage may be off */ }

  function currentTheme() {
    var set = root.getAttribute("data-theme");
    if (set) return set;
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  function setupTheme() {
    var toggle = document.getElementById("theme-toggle");
    if (!toggle) return;
    toggle.hidden = false;
    var show = function () { toggle.textContent = currentTheme() === "dark" ? "☀ Light" : "☾ Dark"; };
    show();
    toggle.addEventListener("click", function () {
      var next = currentTheme() === "dark" ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { window.localStorage.setItem(THEME_KEY, next); } catch (e) { /* ignore */ }
      show();
    });
  }

  // Does a change message concern this page? Lists refresh on any change while they show
  // the newest page; an event's or a task's page when it (or one of its tasks) changed.
  function concerns(live, data) {
    if (live === "list") return !new URLSearchParams(window.location.search).has("before");
    var parts = live.split(":");
    var id = parts[1];
    if (parts[0] === "event") {
      return data.events.indexOf(id) >= 0 || data.tasks.some(function (t) { return t[1] === id; });
    }
    if (parts[0] === "task") return data.tasks.some(function (t) { return t[0] === id; });
    return false;
  }

  var busy = false;
  var again = false;

  function ids(container) {
    var seen = {};
    container.querySelectorAll("tr[id], article[id]").forEach(function (el) { seen[el.id] = true; });
    return seen;
  }

  function swap(fresh) {
    var old = document.getElementById("live-region");
    var next = fresh.getElementById("live-region");
    if (!old || !next) return;
    var before = ids(old);
    var open = [];
    old.querySelectorAll("details").forEach(function (d, i) { if (d.open) open.push(i); });
    var adopted = document.importNode(next, true);
    adopted.querySelectorAll("details").forEach(function (d, i) { if (open.indexOf(i) >= 0) d.open = true; });
    adopted.querySelectorAll("tr[id], article[id]").forEach(function (el) {
      if (!before[el.id]) el.classList.add("flash");
    });
    old.replaceWith(adopted);
    document.dispatchEvent(new CustomEvent("mecha:refreshed"));
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok || response.redirected) return null;
        return response.text();
      })
      .then(function (html) {
        if (html) swap(new DOMParser().parseFromString(html, "text/html"));
      })
      .catch(function () { /* the next change tries again */ })
      .then(function () {
        busy = false;
        if (again) { again = false; window.setTimeout(refresh, 400); }
      });
  }

  function setupLive() {
    var live = document.body.getAttribute("data-live");
    var dot = document.getElementById("live-state");
    if (!live || !window.EventSource) { if (dot) dot.hidden = true; return; }
    var source = new EventSource("/ui/stream");
    source.addEventListener("open", function () { if (dot) dot.classList.add("on"); });
    source.addEventListener("error", function () { if (dot) dot.classList.remove("on"); });
    source.addEventListener("change", function (message) {
      var data;
      try { data = JSON.parse(message.data); } catch (e) { return; }
      if (concerns(live, data)) refresh();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupTheme();
    setupLive();
  });
})();
