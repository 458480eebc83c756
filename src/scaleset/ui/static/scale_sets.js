/* The scale sets page: every scale set of every subscription, with its image, policy,
   automatic OS upgrade and current run (refreshed every 15 s). */
"use strict";

(() => {
  const ui = window.scaleset;
  const { h } = ui;
  const body = document.getElementById("scale-sets-body");
  const status = document.getElementById("list-status");
  const MAX_SCALE_SETS = 500;
  const runCells = new Map();

  async function load() {
    let sets = [];
    try {
      const subscriptions = await ui.list("/subscriptions", { "api-version": ui.SUBSCRIPTIONS });
      for (const sub of subscriptions) {
        const found = await ui.list(
          "/subscriptions/" + encodeURIComponent(sub.subscriptionId) +
          "/providers/Microsoft.Compute/virtualMachineScaleSets",
          { "api-version": ui.COMPUTE }, MAX_SCALE_SETS - sets.length);
        sets = sets.concat(found);
      }
    } catch (err) {
      status.textContent = "Could not list the scale sets: " + err.message;
      status.classList.add("error");
      return;
    }
    sets.sort((a, b) => a.id.localeCompare(b.id));
    ui.replace(body, sets.map(row));
    status.textContent = sets.length === 0
      ? "No scale sets yet: create one with 'scaleset vmss create' or the Azure SDK."
      : sets.length + (sets.length === 1 ? " scale set." : " scale sets.");
    await refreshRuns();
  }

  function row(set) {
    const props = set.properties || {};
    const upgrade = props.upgradePolicy || {};
    const auto = (upgrade.automaticOSUpgradePolicy || {}).enableAutomaticOSUpgrade === true;
    const ref = ((props.virtualMachineProfile || {}).storageProfile || {}).imageReference;
    const runCell = h("td", { class: "run" }, h("span", { class: "muted" }, "…"));
    const policyCell = h("td", {}, ui.policyText(upgrade.mode, upgrade.rollingUpgradePolicy));
    runCells.set(set.id, { runCell, policyCell, mode: upgrade.mode });
    const parts = ui.parseId(set.id);
    return h("tr", { data: { scaleSet: set.id } },
      h("th", { scope: "row" }, h("a", { href: ui.scaleSetPage(set.id) }, set.name)),
      h("td", {}, parts.resourceGroup),
      h("td", {}, ui.imageText(ref),
        ref && ref.exactVersion ? h("div", { class: "muted" }, "now " + ref.exactVersion) : null),
      policyCell,
      h("td", {}, auto ? "✔ On" : "✖ Off"),
      h("td", {}, String((set.sku || {}).capacity ?? "—")),
      runCell);
  }

  async function refreshRuns() {
    for (const [id, cells] of runCells) {
      try {
        const view = await ui.get(id + "/rollout", { "api-version": ui.COMPUTE });
        const policy = (view.scaleSet || {}).rollingUpgradePolicy;
        if (policy) ui.replace(cells.policyCell, ui.policyText(cells.mode, policy));
        ui.replace(cells.runCell, runSummary(view.run));
      } catch (err) {
        ui.replace(cells.runCell, h("span", { class: "error" }, err.message));
      }
    }
  }

  function runSummary(run) {
    if (!run) return h("span", { class: "muted" }, "No run yet");
    const p = run.progress || {};
    const total = (p.successfulInstanceCount || 0) + (p.failedInstanceCount || 0) +
      (p.inProgressInstanceCount || 0) + (p.pendingInstanceCount || 0);
    return [
      h("span", { class: "badge status-" + run.status }, run.status),
      " ", run.kind, run.targetImageVersion ? " to " + run.targetImageVersion : "",
      h("div", { class: "muted" },
        (p.successfulInstanceCount || 0) + " of " + total + " done, " +
        (p.failedInstanceCount || 0) + " failed · " +
        (ui.ACTIVE.has(run.status) ? "since " + ui.time(run.startTime)
                                    : "ended " + ui.dateTime(run.endTime))),
    ];
  }

  load();
  window.setInterval(refreshRuns, 15000);
})();
