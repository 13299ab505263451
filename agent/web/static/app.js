// ocpp-agent dashboard: the little script the pages need (no framework, no build step).
// "/": the live section is swapped for the server's rendering at every server-sent event.
// "/log": filters apply as soon as they change, and new frames appear on top while the page is open.
"use strict";

function followStatus(live) {
  const source = new EventSource(live.dataset.events);
  source.addEventListener("status", (event) => {
    live.innerHTML = JSON.parse(event.data).html;
  });
  source.onerror = () => {
    // The web process restarts or the network dropped: EventSource reconnects by itself.
    live.classList.add("stale");
  };
  source.onopen = () => live.classList.remove("stale");
}

function followLog(form, rows) {
  const older = document.getElementById("older");
  const download = document.getElementById("download");
  let generation = 0;  // a newer filter change makes older answers void
  let timer = null;

  const query = () => {
    const params = new URLSearchParams();
    for (const [key, value] of new FormData(form)) {
      if (value) params.set(key, value);
    }
    return params;
  };
  const topId = () => (rows.firstElementChild ? rows.firstElementChild.dataset.id : "0");

  async function refresh() {
    const mine = ++generation;
    const params = query();
    const response = await fetch("/log/rows?" + params, {cache: "no-store"});
    if (mine !== generation) return;
    if (!response.ok) {
      rows.innerHTML = "";
      form.setAttribute("data-error", await response.text());
      return;
    }
    form.removeAttribute("data-error");
    rows.innerHTML = await response.text();
    rows.dataset.live = "yes";
    const next = response.headers.get("X-Older");
    older.hidden = !next;
    older.href = next || "";
    download.href = "/api/log.jsonl?" + params;
    history.replaceState(null, "", "/log" + (params.toString() ? "?" + params : ""));
  }

  async function poll() {
    if (rows.dataset.live !== "yes" || document.hidden) return;
    const mine = generation;
    const params = query();
    params.set("after", topId());
    try {
      const response = await fetch("/log/rows?" + params, {cache: "no-store"});
      if (!response.ok || mine !== generation) return;
      const fresh = await response.text();
      if (fresh && mine === generation) rows.insertAdjacentHTML("afterbegin", fresh);
    } catch (error) {
      // the web process is restarting: the next poll tries again
    }
  }

  form.addEventListener("change", () => refresh());
  form.addEventListener("input", (event) => {
    if (event.target.type !== "search" && event.target.type !== "text") return;
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  });
  form.addEventListener("submit", (event) => { event.preventDefault(); refresh(); });
  setInterval(poll, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (live) followStatus(live);
  const form = document.getElementById("filters");
  const rows = document.getElementById("log-rows");
  if (form && rows) followLog(form, rows);
});
