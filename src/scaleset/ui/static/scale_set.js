/* One scale set, live: the instance grid (colour = image version; state and health as
   text and icon), the current run with its gates, actions, the pending automatic upgrade,
   the timeline of the current and past runs, the history with per-instance outcomes and
   the image versions with their replication.

   Live updates come from the event stream (`…/events?follow=true`, an EventSource that
   resumes with Last-Event-ID on its own): each event refetches `…/rollout`. A slow poll
   covers a stream that is down. */
"use strict";

(() => {
  const ui = window.scaleset;
  const charts = window.scalesetCharts;
  const { h } = ui;
  const SET = document.body.dataset.scaleSet;
  const canAct = document.body.dataset.canAct === "true";
  const V = { "api-version": ui.COMPUTE };
  const POLL_MS = 10000;
  const ACTIVE_POLL_MS = 2000;
  const IMAGES_POLL_MS = 30000;
  const OUTCOMES = {
    InstanceUpgraded: { icon: "✔", label: "Upgraded" },
    InstanceFailed: { icon: "✖", label: "Failed" },
    InstanceRolledBack: { icon: "↺", label: "Rolled back" },
    InstanceRollbackFailed: { icon: "✖", label: "Rollback failed" },
    InstanceLeftRun: { icon: "⊘", label: "Left the run" },
  };
  const $ = (id) => document.getElementById(id);

  const colours = new ui.VersionColours();
  let rollout = null;
  let skew = 0;                    // server clock minus ours, from rollout.now
  let runs = [];                   // from RunStarted / RunFinished events, newest first
  let selectedRun = null;
  let followLatest = true;         // the run selector follows new runs until a user picks
  const runEvents = new Map();     // runId -> its events (oldest first)
  let pending = null;              // the OSUpgrade/... status, or null
  let source = null;
  let lastMessageAt = 0;
  let lastAnnounced = "";
  let platform = null;             // the platform image's versions, once listed

  // ---- loading --------------------------------------------------------------------------

  const refreshRollout = coalesce(async () => {
    try {
      rollout = await ui.get(SET + "/rollout", V);
    } catch (err) {
      showLoadError("Could not read the scale set: " + err.message);
      return;
    }
    $("load-error").hidden = true;
    skew = Date.parse(rollout.now) - Date.now();
    colours.add(rollout.instances.map((i) => i.imageVersion).filter(Boolean));
    renderFacts();
    renderGrid();
    renderRun();
    renderActions();
    platformVersions();  // how many instances each version has changes during a run
    if (rollout.run && !runs.some((r) => r.runId === rollout.run.runId)) refreshRuns();
    if (selectedRun && rollout.run && selectedRun === rollout.run.runId) renderSelectedRun();
  });

  const refreshRuns = coalesce(async () => {
    try {
      const since = new Date(Date.now() + skew - 62 * 86400 * 1000).toISOString();
      const events = await ui.list(SET + "/events",
        { ...V, kind: "RunStarted,RunFinished", since, $top: "1000" }, 5000);
      const byId = new Map();
      for (const e of events) {
        if (!e.runId) continue;
        const run = byId.get(e.runId) || { runId: e.runId };
        if (e.kind === "RunStarted") {
          const m = /^(\w+) run started by (\w+)/.exec(e.message || "");
          Object.assign(run, { startTime: e.time, kind: m ? m[1] : "", startedBy: m ? m[2] : "" });
        } else {
          Object.assign(run, { endTime: e.time, status: (e.data || {}).status || "" });
        }
        byId.set(e.runId, run);
      }
      runs = [...byId.values()].filter((r) => r.startTime)
        .sort((a, b) => Date.parse(b.startTime) - Date.parse(a.startTime));
    } catch (err) {
      runs = [];
    }
    if (followLatest && runs.length) selectedRun = runs[0].runId;
    renderRunSelect();
    renderSelectedRun();
  });

  const refreshHistory = coalesce(async () => {
    const body = $("history-body");
    try {
      const items = await ui.list(SET + "/osUpgradeHistory", V, 50);
      if (!items.length) {
        ui.replace(body, h("tr", {}, h("td", { colspan: 10, class: "muted" },
          "No OS upgrade yet.")));
        return;
      }
      ui.replace(body, items.map(historyRow));
    } catch (err) {
      ui.replace(body, h("tr", {}, h("td", { colspan: 10, class: "error" }, err.message)));
    }
  });

  const refreshPending = coalesce(async () => {
    try {
      const view = await ui.get(SET + "/instanceView", V);
      pending = (view.statuses || []).find((st) => String(st.code).startsWith("OSUpgrade/")) || null;
    } catch (err) {
      pending = null;
    }
    renderPending();
    renderActions();
  });

  const refreshImages = coalesce(async () => {
    const box = $("image-versions");
    if (!rollout) return;
    const set = rollout.scaleSet;
    const ref = set.imageReference || {};
    try {
      if (ref.id) {
        await galleryVersions(box, ref);
      } else if (ref.publisher && ref.offer && ref.sku) {
        const versions = await ui.get(
          "/subscriptions/" + encodeURIComponent(ui.parseId(set.id).subscription) +
          "/providers/Microsoft.Compute/locations/" + encodeURIComponent(set.location) +
          "/publishers/" + encodeURIComponent(ref.publisher) + "/artifacttypes/vmimage/offers/" +
          encodeURIComponent(ref.offer) + "/skus/" + encodeURIComponent(ref.sku) + "/versions", V);
        colours.add(versions.map((v) => v.name));
        platform = { versions: versions.map((v) => v.name), ref };
        platformVersions();
      } else {
        ui.replace(box, h("p", { class: "muted" }, "This image reference has no version list here."));
      }
    } catch (err) {
      ui.replace(box, h("p", { class: "error" }, "Could not list the image versions: " + err.message));
    }
    renderGrid();
  });

  async function loadRunEvents(runId) {
    if (runEvents.has(runId)) return runEvents.get(runId);
    const events = await ui.list(SET + "/events", { ...V, runId, $top: "1000" }, 5000);
    runEvents.set(runId, events);
    return events;
  }

  // ---- the live stream ------------------------------------------------------------------

  function connect() {
    if (!window.EventSource) return;
    const since = rollout ? rollout.now : new Date().toISOString();
    source = new EventSource(ui.url(SET + "/events", { ...V, follow: "true", since }),
                             { withCredentials: true });
    source.onmessage = (message) => {
      lastMessageAt = Date.now();
      let event;
      try { event = JSON.parse(message.data); } catch (err) { return; }
      onEvent(event);
    };
    source.onopen = () => { lastMessageAt = Date.now(); };
    // On an error the browser reconnects by itself, sending Last-Event-ID: nothing is missed.
  }

  function onEvent(event) {
    refreshRollout();
    if (event.runId && runEvents.has(event.runId)) {
      const list = runEvents.get(event.runId);
      if (!list.some((e) => e.id === event.id)) list.push(event);
      if (event.runId === selectedRun) renderSelectedRunSoon();
    }
    if (event.kind === "RunStarted" || event.kind === "RunFinished") {
      refreshRuns();
      refreshHistory();
    }
    if (event.kind === "RunStarted" || event.kind === "RunFinished" ||
        String(event.kind).startsWith("OSUpgrade") || event.kind === "ModelChanged") {
      refreshPending();
    }
    if (event.kind === "ModelChanged") refreshImages();
  }

  let polls = 0;
  function poll() {
    polls += 1;
    const streaming = source && source.readyState === 1;
    const active = rollout && rollout.run && ui.ACTIVE.has(rollout.run.status);
    // A run's instances move between events too (upgrading -> waiting for health):
    // while one is active, look every ACTIVE_POLL_MS; otherwise only if the stream is down.
    if (active || (polls % (POLL_MS / ACTIVE_POLL_MS) === 0 &&
                   (!streaming || Date.now() - lastMessageAt > 3 * POLL_MS))) {
      refreshRollout();
      refreshPending();
    }
  }

  // ---- rendering: the scale set ---------------------------------------------------------

  function fact(term, ...value) {
    return h("div", {}, h("dt", {}, term), h("dd", {}, ...value));
  }

  function renderFacts() {
    const set = rollout.scaleSet;
    const ref = set.imageReference || {};
    ui.replace($("facts"),
      fact("Image", ui.imageText(ref), ref.exactVersion ? " (now " + ref.exactVersion + ")" : ""),
      fact("Location", set.location),
      fact("Capacity", String(set.capacity)),
      fact("Upgrade", ui.policyText(set.upgradeMode, set.rollingUpgradePolicy)),
      fact("Automatic OS upgrade", set.automaticOSUpgrade ? "✔ On" : "✖ Off"));
  }

  function healthText(health) {
    const icons = { Healthy: "✔", Unhealthy: "✖", Initializing: "…", Unknown: "?" };
    return (icons[health] || "?") + " " + (health || "Unknown");
  }

  function cell(instance) {
    const state = ui.stateOf(instance.state);
    const slot = colours.slot(instance.imageVersion);
    const extra = [];
    if (instance.batch !== null && instance.batch !== undefined) {
      extra.push("batch " + (instance.batch + 1));
    }
    if (instance.healthDeadline && instance.state === "waitingForHealth") {
      extra.push(h("span", { class: "countdown", data: { deadline: instance.healthDeadline } },
                   countdownText(instance.healthDeadline)));
    }
    if (instance.powerState && instance.powerState !== "running") extra.push(instance.powerState);
    if (instance.protected && instance.state !== "protected") extra.push("protected");
    const classes = ["cell", slot || "", "state-" + instance.state,
                     instance.health === "Unhealthy" ? "unhealthy" : ""].filter(Boolean);
    return h("li", {
      class: classes.join(" "), title: state.help + (instance.reason ? ": " + instance.reason : ""),
      data: { instanceId: instance.instanceId, imageVersion: instance.imageVersion || "",
              state: instance.state, health: instance.health || "" },
    },
      h("div", { class: "cell-top" }, h("span", {}, "#" + instance.instanceId),
        h("span", {}, instance.imageVersion || "?")),
      h("div", { class: "cell-state" }, h("span", { class: "icon", "aria-hidden": "true" }, state.icon),
        state.label),
      h("div", { class: "cell-health" }, "Health: " + healthText(instance.health)),
      extra.length ? h("div", { class: "cell-extra" }, extra.flatMap((e, i) => i ? [" · ", e] : [e])) : null,
      instance.reason && ["failed", "rolledBack", "rollingBack"].includes(instance.state)
        ? h("div", { class: "cell-extra" }, instance.reason.slice(0, 80)) : null);
  }

  function countdownText(deadline) {
    const left = (Date.parse(deadline) - (Date.now() + skew)) / 1000;
    return Math.max(0, Math.ceil(left)) + " s left";
  }

  function elapsed(since) {
    return ui.duration((Date.now() + skew - Date.parse(since)) / 1000);
  }

  let ticks = 0;
  function tick() {
    ticks += 1;
    for (const span of document.querySelectorAll("[data-since]")) {
      span.textContent = elapsed(span.dataset.since);
    }
    const run = rollout && rollout.run;
    if (ticks % 2 === 0 && run && !run.endTime && selectedRun === run.runId) {
      // The live timeline's "now" moves on between events too.
      charts.timeline($("timeline"), run, new Date(Date.now() + skew).toISOString());
    }
    for (const span of document.querySelectorAll(".countdown[data-deadline]")) {
      span.textContent = countdownText(span.dataset.deadline);
    }
    const next = document.querySelector("[data-next-batch]");
    if (next) next.textContent = countdownText(next.dataset.nextBatch).replace(" left", "");
  }

  function renderGrid() {
    if (!rollout) return;
    const instances = [...rollout.instances].sort((a, b) =>
      (parseInt(a.instanceId, 10) - parseInt(b.instanceId, 10)) ||
      a.instanceId.localeCompare(b.instanceId));
    ui.replace($("grid"), instances.map(cell));
    $("instance-count").textContent = "(" + instances.length + ")";
    const counts = new Map();
    for (const i of instances) counts.set(i.imageVersion, (counts.get(i.imageVersion) || 0) + 1);
    const target = rollout.run && rollout.run.targetImageVersion;
    const shown = colours.known.filter((v) => counts.has(v) || v === target);
    ui.replace($("version-legend"), shown.map((v) => h("li", { data: { version: v } },
      h("span", { class: "swatch " + colours.slot(v), "aria-hidden": "true" }),
      v + " · " + (counts.get(v) || 0) + (counts.get(v) === 1 ? " instance" : " instances") +
      (v === target ? " (target)" : ""))));
  }

  function renderStateLegend() {
    ui.replace($("state-legend"), Object.entries(ui.STATES).map(([, st]) =>
      h("li", { title: st.help }, h("span", { class: "icon", "aria-hidden": "true" }, st.icon), st.label)));
  }

  // ---- rendering: the run ---------------------------------------------------------------

  function renderRun() {
    const run = rollout.run;
    const statusLine = $("run-status");
    let text;
    if (!run) {
      text = "No run yet.";
    } else {
      const batches = run.batches || [];
      text = run.status + " · " + run.kind + " run" +
        (run.targetImageVersion ? " to " + run.targetImageVersion : "") +
        " · batch " + batches.length + " of " + Math.max(run.batchesTotal || 0, batches.length) +
        (run.cancelRequested && ui.ACTIVE.has(run.status) ? " · cancel requested" : "");
    }
    if (text !== lastAnnounced) {
      // The live region speaks only when the status changes, not on every refresh.
      lastAnnounced = text;
      ui.replace(statusLine, run ? h("span", { class: "badge status-" + run.status }, run.status) : null,
                 run ? text.slice(run.status.length + 3) : text);
    }
    renderProgress(run);
    const facts = [];
    if (run) {
      const p = run.progress || {};
      facts.push(fact("Started by", run.startedBy + " at " + ui.time(run.startTime)));
      facts.push(fact(run.endTime ? "Ended" : "Running for", run.endTime ? ui.time(run.endTime)
        : h("span", { data: { since: run.startTime } }, elapsed(run.startTime))));
      facts.push(fact("Instances", (p.successfulInstanceCount || 0) + " succeeded, " +
        (p.failedInstanceCount || 0) + " failed, " + (p.inProgressInstanceCount || 0) +
        " in progress, " + (p.pendingInstanceCount || 0) + " pending"));
      if (run.nextBatchAt && ui.ACTIVE.has(run.status)) {
        facts.push(fact("Next batch in", h("span", { data: { nextBatch: run.nextBatchAt } },
          countdownText(run.nextBatchAt).replace(" left", ""))));
      }
      if (run.error) {
        facts.push(fact("Error", h("span", { class: "error" }, run.error.code + ": " + run.error.message)));
      }
    }
    ui.replace($("run-facts"), facts);
    const gates = run ? run.gates || [] : [];
    ui.replace($("gates"), gates.length ? gates.map((g) => h("li", {},
      h("span", { class: g.ok ? "gate-ok" : "gate-breached" }, g.ok ? "✔ within" : "✖ breached"),
      " " + g.name + ": " + g.value + "% (threshold " + g.threshold + "%)"))
      : h("li", { class: "muted" }, run ? "No gate evaluated yet." : "No run yet."));
  }

  function renderProgress(run) {
    const box = $("progress");
    if (!run) { box.replaceChildren(); return; }
    const p = run.progress || {};
    const parts = [["p-ok", p.successfulInstanceCount], ["p-failed", p.failedInstanceCount],
                   ["p-busy", p.inProgressInstanceCount]];
    const total = parts.reduce((n, [, c]) => n + (c || 0), 0) + (p.pendingInstanceCount || 0);
    const svg = ui.s("svg", { viewBox: "0 0 100 10", preserveAspectRatio: "none",
                              width: "100%", height: "12" });
    let x = 0;
    for (const [cls, count] of parts) {
      const w = total ? 100 * (count || 0) / total : 0;
      svg.append(ui.s("rect", { class: cls, x, y: 0, width: w, height: 10 }));
      x += w;
    }
    ui.replace(box, svg);
  }

  // ---- actions --------------------------------------------------------------------------

  function renderActions() {
    const run = rollout && rollout.run;
    const active = run && ui.ACTIVE.has(run.status);
    // A reader's buttons stay disabled whatever the state (and the API refuses them too).
    $("action-start").disabled = !canAct || !rollout || active;
    $("action-cancel").disabled = !canAct || !active || run.cancelRequested;
    $("action-approve").disabled = !canAct || !pending || pending.code !== "OSUpgrade/AwaitingApproval";
  }

  function act(button, path, doing, done) {
    button.addEventListener("click", async () => {
      const result = $("action-result");
      button.disabled = true;
      result.className = "action-result";
      result.textContent = doing + "…";
      try {
        const answer = await ui.post(SET + path, V);
        result.className = "action-result done";
        result.textContent = done + " (HTTP " + answer.status + ").";
      } catch (err) {
        result.className = "action-result failed";
        result.textContent = "Refused" + (err.status ? " (HTTP " + err.status + " " + err.code + ")" : "") +
          ": " + err.message;
      }
      refreshRollout();
      refreshPending();
    });
  }

  // ---- pending automatic upgrade --------------------------------------------------------

  function renderPending() {
    const box = $("pending");
    const set = rollout && rollout.scaleSet;
    if (!pending) {
      ui.replace(box, h("p", { class: "muted" }, set && !set.automaticOSUpgrade
        ? "Automatic OS upgrade is off for this scale set."
        : "No automatic OS upgrade is waiting: a new image version starts one (after its delay and window)."));
      return;
    }
    const when = { "OSUpgrade/Scheduled": "Starts at", "OSUpgrade/AwaitingApproval": "Ready since",
                   "OSUpgrade/WaitingForHealthyInstances": "Waiting since",
                   "OSUpgrade/WaitingForRollingUpgrade": "Since" }[pending.code] || "Time";
    ui.replace(box, h("div", { class: "pending-box", data: { code: pending.code } },
      h("p", {}, h("strong", {}, pending.displayStatus || pending.code)),
      pending.message ? h("p", {}, pending.message) : null,
      pending.time ? h("p", { class: "muted" }, when + " " + ui.dateTime(pending.time)) : null,
      pending.code === "OSUpgrade/AwaitingApproval"
        ? h("p", {}, canAct ? "Approve it with the button above." : "A contributor can approve it.") : null));
  }

  // ---- runs: selector, timeline, gates, outcomes, history -------------------------------

  function renderRunSelect() {
    const select = $("run-select");
    if (!runs.length) {
      ui.replace(select, h("option", { value: "" }, "no run yet"));
      return;
    }
    ui.replace(select, runs.map((r) => h("option", { value: r.runId, selected: r.runId === selectedRun },
      ui.dateTime(r.startTime) + " · " + (r.kind || "run") + " by " + (r.startedBy || "?") + " · " +
      (r.status || "running"))));
  }

  let drawing = null;
  function renderSelectedRunSoon() {
    if (drawing) return;
    drawing = window.setTimeout(() => { drawing = null; renderSelectedRun(); }, 300);
  }

  async function renderSelectedRun() {
    const runId = selectedRun;
    if (!runId) {
      charts.timeline($("timeline"), null, null);
      charts.gates($("gate-chart"), null, [], null);
      ui.replace($("outcomes-body"), h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No run yet.")));
      return;
    }
    let events = [];
    try {
      events = await loadRunEvents(runId);
    } catch (err) {
      ui.replace($("timeline"), h("p", { class: "error" }, "Could not read the run's events: " + err.message));
      return;
    }
    if (runId !== selectedRun) return;
    const current = rollout && rollout.run && rollout.run.runId === runId ? rollout.run : null;
    const run = current || runFromEvents(runId, events);
    const now = rollout ? rollout.now : new Date().toISOString();
    charts.timeline($("timeline"), run, now);
    charts.gates($("gate-chart"), run, events, now);
    renderOutcomes(events);
  }

  function runFromEvents(runId, events) {
    const summary = runs.find((r) => r.runId === runId) || {};
    const batches = [];
    for (const e of events) {
      const index = (e.data || {}).batch;
      if (e.kind === "BatchStarted" && Number.isInteger(index)) {
        batches[index] = { index, start: e.time, end: null, instanceIds: e.data.instances || [] };
      } else if (e.kind === "BatchCompleted" && Number.isInteger(index) && batches[index]) {
        batches[index].end = e.time;
      }
    }
    const started = events.find((e) => e.kind === "RunStarted");
    const finished = events.find((e) => e.kind === "RunFinished");
    const end = finished ? finished.time : summary.endTime || null;
    const list = batches.filter(Boolean).map((b) => ({ ...b, end: b.end || end }));
    return { runId, startTime: started ? started.time : summary.startTime,
             endTime: end, batches: list, batchesTotal: list.length };
  }

  function renderOutcomes(events) {
    const rows = events.filter((e) => OUTCOMES[e.kind]).map((e) => h("tr", {},
      h("td", {}, e.instanceId === null ? "—" : "#" + e.instanceId),
      h("td", {}, ui.time(e.time)),
      h("td", {}, h("span", { "aria-hidden": "true" }, OUTCOMES[e.kind].icon + " "), OUTCOMES[e.kind].label),
      h("td", {}, e.message || "")));
    ui.replace($("outcomes-body"), rows.length ? rows
      : h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No instance has finished in this run yet.")));
  }

  function historyRow(item) {
    const p = item.properties || {};
    const rs = p.runningStatus || {};
    const progress = p.progress || {};
    const rollback = p.rollbackInfo || {};
    const error = p.error || rollback.rollbackError;
    const target = p.targetImageReference || {};
    const show = h("button", { type: "button", on: { click: () => showRunStartedAt(rs.startTime) } },
      "Show run");
    return h("tr", {},
      h("td", {}, ui.dateTime(rs.startTime)), h("td", {}, ui.dateTime(rs.endTime)),
      h("td", {}, h("span", { class: "badge status-" + rs.code }, rs.code || "—")),
      h("td", {}, p.startedBy || "—"), h("td", {}, target.version || ui.imageText(target)),
      h("td", {}, String(progress.successfulInstanceCount ?? 0)),
      h("td", {}, String(progress.failedInstanceCount ?? 0)),
      h("td", {}, String(rollback.successfullyRolledbackInstanceCount ?? 0)),
      h("td", {}, error ? (error.code ? error.code + ": " : "") + (error.message || "") : "—"),
      h("td", {}, show));
  }

  function showRunStartedAt(startTime) {
    const at = Date.parse(startTime);
    let best = null;
    for (const r of runs) {
      const gap = Math.abs(Date.parse(r.startTime) - at);
      if (gap < 5000 && (!best || gap < best.gap)) best = { run: r, gap };
    }
    if (!best) return;
    followLatest = false;
    selectedRun = best.run.runId;
    renderRunSelect();
    renderSelectedRun();
    $("run-select").focus();
    $("timeline-title").scrollIntoView({ block: "start" });
  }

  // ---- images ---------------------------------------------------------------------------

  function platformVersions() {
    if (!platform || !rollout) return;
    const { versions, ref } = platform;
    const box = $("image-versions");
    const counts = new Map();
    for (const i of rollout.instances) counts.set(i.imageVersion, (counts.get(i.imageVersion) || 0) + 1);
    const newest = [...versions].sort(ui.compareVersions).reverse();
    const wanted = ref.version && ref.version.toLowerCase() !== "latest" ? ref.version : newest[0];
    ui.replace(box, h("table", {},
      h("caption", { class: "visually-hidden" }, "Versions of " + ui.imageText({ ...ref, version: "*" })),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Version"), h("th", { scope: "col" }, "Instances on it"),
        h("th", { scope: "col" }, "Note"))),
      h("tbody", {}, newest.slice(0, 20).map((v) => h("tr", {},
        h("td", {}, h("span", { class: "swatch " + (colours.slot(v) || ""), "aria-hidden": "true" }), " " + v),
        h("td", {}, String(counts.get(v) || 0)),
        h("td", {}, v === wanted ? (ref.version === "latest" ? "latest: what the scale set asks for"
          : "pinned by the scale set") : ""))))));
  }

  async function galleryVersions(box, ref) {
    const p = ui.parseId(ref.id);
    const image = "/subscriptions/" + encodeURIComponent(p.subscription) + "/resourceGroups/" +
      encodeURIComponent(p.resourceGroup) + "/providers/Microsoft.Compute/galleries/" +
      encodeURIComponent(p.gallery) + "/images/" + encodeURIComponent(p.image);
    const versions = await ui.list(image + "/versions", { "api-version": ui.GALLERY }, 200);
    const names = versions.map((v) => v.name).sort(ui.compareVersions).reverse().slice(0, 10);
    colours.add(names);
    const detailed = [];
    for (const name of names) {
      detailed.push(await ui.get(image + "/versions/" + encodeURIComponent(name),
        { "api-version": ui.GALLERY, $expand: "ReplicationStatus" }));
    }
    box.replaceChildren(window.scalesetImages.galleryTable(detailed, colours));
  }

  // ---- plumbing -------------------------------------------------------------------------

  function showLoadError(message) {
    const box = $("load-error");
    box.textContent = message;
    box.hidden = false;
  }

  /** An async refresher that runs at most once at a time, and once more if asked meanwhile. */
  function coalesce(fn) {
    let running = null, again = false;
    const run = async () => {
      if (running) { again = true; return running; }
      running = (async () => {
        try { await fn(); } finally {
          running = null;
          if (again) { again = false; run(); }
        }
      })();
      return running;
    };
    return run;
  }

  async function start() {
    renderStateLegend();
    act($("action-start"), "/osRollingUpgrade", "Starting a rolling upgrade",
        "Rolling upgrade accepted: the run starts");
    act($("action-cancel"), "/rollingUpgrades/cancel", "Cancelling",
        "Cancel accepted: the run stops after its current batch");
    act($("action-approve"), "/approveRollingUpgrade", "Approving",
        "Approved: the deferred upgrade starts");
    $("run-select").addEventListener("change", (e) => {
      followLatest = false;
      selectedRun = e.target.value || null;
      renderSelectedRun();
    });
    await refreshRollout();
    connect();
    refreshImages();
    refreshPending();
    refreshRuns();
    refreshHistory();
    window.setInterval(tick, 1000);
    window.setInterval(poll, ACTIVE_POLL_MS);
    window.setInterval(refreshImages, IMAGES_POLL_MS);  // replication progresses on its own
  }

  start();
})();
