// The dashboard's one script. Pages work without it; with it:
// - forms marked data-confirm ask before they post (cancel, delete, bulk replay);
// - pages rendered with data-events-after follow the tenant's job events over Server-Sent Events
//   (/dashboard/events, pushed, no polling) and patch the status and progress they show in place.
//   A row is fetched only for a job the jobs table does not show yet; a job's page refetches the part
//   that changes when the job does. Nothing re-renders a whole table, so focus and reading position stay.

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const MAX_ROWS = 200;
const ANNOUNCE_AFTER_MS = 800;

const label = (status) => String(status).replaceAll("_", " ");
const byJob = (id) => document.querySelectorAll(`[data-job-id="${CSS.escape(id)}"]`);

function askBeforePosting() {
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
    if (question && !window.confirm(question)) event.preventDefault();
  });
}

function patchStatus(holder, status) {
  for (const field of holder.querySelectorAll('[data-field="status"]')) {
    const badge = field.querySelector(".status");
    if (!badge || badge.textContent === label(status)) continue;
    badge.className = `status status-${status}`;
    badge.textContent = label(status);
  }
  if (TERMINAL.has(status)) {
    for (const field of holder.querySelectorAll('[data-field="progress"]')) field.hidden = true;
  }
}

function patchProgress(holder, progress) {
  if (!progress || typeof progress.total !== "number" || progress.total <= 0) return;
  const percent = Math.max(0, Math.min(100, Math.round((100 * progress.current) / progress.total)));
  for (const field of holder.querySelectorAll('[data-field="progress"]')) {
    const bar = field.querySelector("progress");
    if (bar) {
      bar.value = percent;
      bar.textContent = `${percent}%`;
    }
    const text = field.querySelector(".progress-text");
    if (text) {
      text.textContent = `${progress.current} of ${progress.total}` + (progress.message ? ` · ${progress.message}` : "");
    }
    field.hidden = false;
  }
}

// One polite announcement for a burst of changes, so a screen reader is not flooded.
const announcer = {
  latest: new Map(), // job id -> its newest status in this burst
  timer: 0,
  add(id, status) {
    this.latest.delete(id);
    this.latest.set(id, status);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), ANNOUNCE_AFTER_MS);
  },
  flush() {
    const region = document.getElementById("announcer");
    if (region && this.latest.size === 1) {
      const [[id, status]] = this.latest;
      region.textContent = `Job ${id.slice(0, 8)} ${label(status)}`;
    } else if (region && this.latest.size > 1) {
      region.textContent = `${this.latest.size} jobs changed status`;
    }
    this.latest.clear();
  },
};

// The jobs table: a job it does not show yet gets its row fetched once, then patched like the others.
const fetching = new Map(); // job id -> events that arrived while its row was on its way

function wantsRow(table, data) {
  const filters = table.dataset;
  return (
    filters.firstPage === "true" &&
    (!filters.status || filters.status === data.status) &&
    (!filters.type || filters.type === data.type) &&
    (!filters.queue || filters.queue === data.queue)
  );
}

async function addRow(table, data) {
  const id = data.id;
  fetching.set(id, []);
  try {
    const response = await fetch(`/dashboard/jobs/${encodeURIComponent(id)}/row`, { credentials: "same-origin" });
    if (!response.ok) return;
    const template = document.createElement("template");
    template.innerHTML = (await response.text()).trim();
    const row = template.content.querySelector("tr");
    if (!row || table.querySelector(`tr[data-job-id="${CSS.escape(id)}"]`)) return;
    const body = table.tBodies[0];
    body.prepend(row);
    while (body.rows.length > MAX_ROWS && !body.lastElementChild.contains(document.activeElement)) {
      body.lastElementChild.remove();
    }
    table.hidden = false;
    for (const empty of document.querySelectorAll(`[data-empty-for="${table.id}"]`)) empty.hidden = true;
    announcer.add(id, data.status);
  } finally {
    const later = fetching.get(id) || [];
    fetching.delete(id);
    later.forEach(apply);
  }
}

// A job's page: the part that changes with its status is fetched again, keeping focus in it.
let refreshTimer = 0;

function refreshDetail(detail) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(async () => {
    const response = await fetch(`/dashboard/jobs/${encodeURIComponent(detail.dataset.jobDetail)}/outcome`, {
      credentials: "same-origin",
    });
    if (!response.ok) return;
    const hadFocus = detail.contains(document.activeElement);
    detail.innerHTML = await response.text();
    if (hadFocus) {
      detail.tabIndex = -1;
      detail.focus();
    }
  }, 150);
}

function apply(data) {
  const id = data.id;
  if (!id) return;
  if (fetching.has(id)) {
    fetching.get(id).push(data);
    return;
  }
  const holders = byJob(id);
  if (data.event === "progress") {
    holders.forEach((holder) => patchProgress(holder, data.progress));
    return;
  }
  if (data.event !== "status" || !data.status) return;
  holders.forEach((holder) => patchStatus(holder, data.status));
  if (holders.length) announcer.add(id, data.status);
  const table = document.querySelector("table[data-live-table]");
  if (table && !table.querySelector(`tr[data-job-id="${CSS.escape(id)}"]`) && wantsRow(table, data)) {
    addRow(table, data);
  }
  const detail = document.querySelector("[data-job-detail]");
  if (detail && detail.dataset.jobDetail === id) refreshDetail(detail);
}

function showState(text, state) {
  const badge = document.getElementById("live-state");
  if (!badge) return;
  badge.hidden = false;
  badge.textContent = text;
  badge.dataset.state = state;
}

function follow() {
  const after = document.body.dataset.eventsAfter;
  if (after === undefined || !("EventSource" in window)) return;
  const url = new URL("/dashboard/events", window.location.origin);
  url.searchParams.set("after", after);
  const source = new EventSource(url);
  source.addEventListener("open", () => showState("Live", "live"));
  source.addEventListener("error", () => {
    const closed = source.readyState === EventSource.CLOSED;
    showState(closed ? "Updates stopped: reload the page" : "Reconnecting…", "down");
  });
  for (const kind of ["status", "progress"]) {
    source.addEventListener(kind, (event) => apply(JSON.parse(event.data)));
  }
  source.addEventListener("trimmed", () => showState("Some updates were missed: reload the page", "down"));
}

askBeforePosting();
follow();
