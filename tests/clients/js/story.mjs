// An operator's whole story with the Azure SDK for JavaScript, unmodified, on a live serve.
//
// Run by tests/e2e/test_js_sdk_story.py, which starts the server and reads what this prints:
// one JSON object a line on stdout, {"step": name} when a step starts, {"write": ...} with
// the resource as GET showed it before and after each write (the Python side diffs them:
// tests/e2e/story.py), {"done": true} at the end. A failed step prints what failed on
// stderr (the request, the status, the body) and exits 1.
//
// Environment: SCALESET_ENDPOINT, SCALESET_SUBSCRIPTION, NODE_EXTRA_CA_CERTS; the service
// principal the story signs in as (`scaleset sp create`): SCALESET_TENANT, SCALESET_APP_ID,
// SCALESET_PASSWORD; SCALESET_TOKEN, the publisher's token for publishing image versions.

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { ClientSecretCredential } from "@azure/identity";
import { ComputeManagementClient } from "@azure/arm-compute";
import { NetworkManagementClient } from "@azure/arm-network";

const endpoint = required("SCALESET_ENDPOINT");
const token = required("SCALESET_TOKEN");
const subscription = required("SCALESET_SUBSCRIPTION");
const tenant = required("SCALESET_TENANT");
const appId = required("SCALESET_APP_ID");
const password = required("SCALESET_PASSWORD");
const RG = "rg-js-story";
const NAME = "web";
const POLL = { updateIntervalInMs: 200 }; // the server says Retry-After: 1
const IMAGES = `/subscriptions/${subscription}/providers/Microsoft.Compute/locations/westus/`
  + "publishers/Canonical/artifacttypes/vmimage/offers/UbuntuServer/skus/18.04-LTS/versions";
const EXACT = "properties.virtualMachineProfile.storageProfile.imageReference.exactVersion";
const POLICY = "properties.upgradePolicy";
const CHANGED = { $changed: true }; // the field must show a new value (story.py's CHANGED)

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return value;
}

// Sign in as the service principal, against the server's own authority. Instance
// discovery would ask login.microsoftonline.com about a host it does not know.
const credential = new ClientSecretCredential(tenant, appId, password, {
  authorityHost: endpoint, disableInstanceDiscovery: true,
});
const scopes = [`${endpoint}/.default`];
const options = {
  endpoint,
  credentials: { scopes }, // @azure/arm-compute 24 (modular client)
  credentialScopes: scopes, // @azure/arm-network 36 (classic client)
  retryOptions: { maxRetries: 0 }, // a failure shows at once, not after back-off
};
const compute = new ComputeManagementClient(credential, subscription, options);
const network = new NetworkManagementClient(credential, subscription, options);
const vmss = compute.virtualMachineScaleSets;
const vms = compute.virtualMachineScaleSetVMs;
const upgrades = compute.virtualMachineScaleSetRollingUpgrades;

function emit(record) {
  process.stdout.write(JSON.stringify(record) + "\n");
}

/** The scale set as the server sent it (through the SDK's own GET), not the SDK's model. */
async function get() {
  let body;
  await vmss.get(RG, NAME, {
    onResponse: (response) => { body = JSON.parse(response.bodyAsText); },
  });
  assert.ok(body, "the SDK's GET gave no body to onResponse");
  return body;
}

/** Instance `id` with its instance view, as the server sent it. */
async function getInstance(id) {
  let body;
  await vms.get(RG, NAME, id, {
    expand: "instanceView",
    onResponse: (response) => { body = JSON.parse(response.bodyAsText); },
  });
  assert.ok(body, "the SDK's GET gave no body to onResponse");
  return body;
}

/** Record a write for the Python side: only the fields in `expect` may differ. */
function wrote(name, expect, before, after) {
  emit({ write: name, expect, before, after });
}

async function eventually(predicate, what, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    assert.ok(Date.now() < deadline, `timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

async function all(iterator) {
  const items = [];
  for await (const item of iterator) items.push(item);
  return items;
}

async function allHealthy(count) {
  const found = await all(vms.list(RG, NAME, { expand: "instanceView" }));
  const healthy = found.filter(
    (v) => v.instanceView?.vmHealth?.status?.code === "HealthState/healthy");
  return found.length === count && healthy.length === count ? found : undefined;
}

/** The operator publishes a platform image version (scaleset's own API; no SDK has it). */
async function publish(version) {
  const response = await fetch(`${endpoint}${IMAGES}/${version}?api-version=2026-04-01`, {
    method: "PUT",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({
      location: "westus", properties: { osDiskImage: { operatingSystem: "Linux" } },
    }),
  });
  assert.ok([200, 201].includes(response.status),
    `publishing ${version}: ${response.status} ${await response.text()}`);
}

function describe(error) {
  const lines = [error?.stack ?? String(error)];
  if (error?.request) lines.push(`request: ${error.request.method} ${error.request.url}`);
  if (error?.statusCode) lines.push(`status: ${error.statusCode} code: ${error.code}`);
  const body = error?.response?.bodyAsText;
  if (body) lines.push(`response body: ${body}`);
  return lines.join("\n");
}

let current = "start";
async function step(name, body) {
  current = name;
  emit({ step: name });
  await body();
}

async function story() {
  let before;
  let after;
  let probeId;

  await step("sign in: the authority issues an access token", async () => {
    const issued = await credential.getToken(scopes);
    assert.equal(issued.token.split(".").length, 3, "expected a JWT from the server's authority");
    assert.notEqual(issued.token, token, "the story must not run on the publisher's token");
    assert.ok(issued.expiresOnTimestamp > Date.now(), "the token is already expired");
  });

  await step("the publisher publishes image 1.0.0", async () => {
    await publish("1.0.0");
  });

  await step("create the load balancer and its probe (@azure/arm-network)", async () => {
    const lb = await network.loadBalancers.beginCreateOrUpdateAndWait(RG, "lb", {
      location: "westus",
      probes: [{ name: "http", protocol: "Http", port: 80, requestPath: "/health" }],
    }, POLL);
    assert.equal(lb.probes?.length, 1, `probes: ${JSON.stringify(lb.probes)}`);
    probeId = lb.probes[0].id;
    assert.match(probeId, /\/loadBalancers\/lb\/probes\/http$/i);
  });

  await step("create the scale set", async () => {
    const created = await vmss.createOrUpdate(RG, NAME, {
      location: "westus",
      sku: { name: "Standard_D2s_v3", tier: "Standard", capacity: 3 },
      upgradePolicy: {
        mode: "Rolling",
        rollingUpgradePolicy: {
          maxBatchInstancePercent: 20, maxUnhealthyInstancePercent: 20,
          maxUnhealthyUpgradedInstancePercent: 20, pauseTimeBetweenBatches: "PT0S",
        },
        automaticOSUpgradePolicy: {
          enableAutomaticOSUpgrade: true, disableAutomaticRollback: false,
        },
      },
      virtualMachineProfile: {
        osProfile: {
          computerNamePrefix: "web", adminUsername: "azureuser", adminPassword: "Never-Echo-1",
        },
        storageProfile: {
          imageReference: {
            publisher: "Canonical", offer: "UbuntuServer", sku: "18.04-LTS", version: "latest",
          },
          osDisk: { createOption: "FromImage" },
        },
        networkProfile: { healthProbe: { id: probeId } },
      },
    }, POLL);
    assert.equal(created.provisioningState, "Succeeded");
    const image = created.virtualMachineProfile.storageProfile.imageReference;
    assert.deepEqual([image.version, image.exactVersion], ["latest", "1.0.0"]);
    assert.equal(created.virtualMachineProfile.osProfile.adminPassword, undefined,
      "GET must never return adminPassword");
    assert.deepEqual((await all(vmss.list(RG))).map((s) => s.name), [NAME]);
    before = await get();
    assert.equal(before.sku.capacity, 3);
    assert.equal(
      before.properties.upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrade, true);
    await eventually(() => allHealthy(3), "3 healthy instances");
  });

  await step("scale to 4 instances", async () => {
    await vmss.update(RG, NAME, { sku: { capacity: 4 } }, POLL);
    after = await get();
    wrote("scale", { "sku.capacity": 4 }, before, after);
    // The new instance must be healthy first: the automatic run's gate counts it.
    const found = await eventually(() => allHealthy(4), "4 healthy instances");
    assert.deepEqual(found.map((v) => v.instanceId).sort(), ["0", "1", "2", "3"]);
    before = after;
  });

  await step("change one rolling-upgrade field", async () => {
    await vmss.update(RG, NAME, {
      upgradePolicy: { rollingUpgradePolicy: { prioritizeUnhealthyInstances: true } },
    }, POLL);
    after = await get();
    wrote("policy", {
      [`${POLICY}.rollingUpgradePolicy.prioritizeUnhealthyInstances`]: true,
    }, before, after);
    before = after;
  });

  await step("publish 1.1.0 and watch the automatic run to its end", async () => {
    await publish("1.1.0");
    const seen = [];
    const latest = await eventually(async () => {
      let status;
      try {
        status = await upgrades.getLatest(RG, NAME);
      } catch (error) {
        if (error.statusCode === 404) return undefined; // not started yet
        throw error;
      }
      const p = status.progress;
      seen.push([status.runningStatus.code, p.successfulInstanceCount,
        p.inProgressInstanceCount, p.pendingInstanceCount, p.failedInstanceCount]);
      return ["Completed", "Faulted", "Cancelled"].includes(status.runningStatus.code)
        ? status : undefined;
    }, "the automatic run to end");
    const trace = JSON.stringify(seen);
    assert.equal(latest.runningStatus.code, "Completed", trace);
    assert.equal(latest.progress.successfulInstanceCount, 4, trace);
    assert.equal(latest.policy.prioritizeUnhealthyInstances, true,
      "the run follows the policy the update set");
    for (const [code, ok, running, pending, failed] of seen) {
      assert.ok(["RollingForward", "Completed"].includes(code), trace);
      assert.equal(ok + running + pending + failed, 4, trace);
      assert.equal(failed, 0, trace);
    }
    const done = seen.map((s) => s[1]);
    assert.deepEqual(done, [...done].sort((a, b) => a - b), `progress went backwards: ${trace}`);
    after = await get();
    wrote("automatic run", { [EXACT]: "1.1.0" }, before, after);
    const versions = new Set((await all(vms.list(RG, NAME)))
      .map((v) => v.storageProfile.imageReference.exactVersion));
    assert.deepEqual([...versions], ["1.1.0"]);
    before = after;
  });

  await step("read the OS upgrade history", async () => {
    const history = await all(vmss.listOSUpgradeHistory(RG, NAME));
    assert.equal(history.length, 1, JSON.stringify(history));
    const run = history[0].properties;
    assert.equal(run.startedBy, "Platform");
    assert.equal(run.runningStatus.code, "Completed");
    assert.equal(run.targetImageReference.version, "1.1.0");
    assert.equal(run.progress.successfulInstanceCount, 4);
  });

  await step("turn automatic OS upgrade off", async () => {
    await vmss.update(RG, NAME, {
      upgradePolicy: { automaticOSUpgradePolicy: { enableAutomaticOSUpgrade: false } },
    }, POLL);
    after = await get();
    wrote("automatic off", {
      [`${POLICY}.automaticOSUpgradePolicy.enableAutomaticOSUpgrade`]: false,
    }, before, after);
    before = after;
  });

  await step("publish 1.2.0 and run a manual rolling upgrade to it", async () => {
    await publish("1.2.0");
    await upgrades.startOSUpgrade(RG, NAME, POLL); // the operation ends with the run
    const latest = await upgrades.getLatest(RG, NAME);
    assert.equal(latest.runningStatus.code, "Completed");
    const history = await all(vmss.listOSUpgradeHistory(RG, NAME));
    assert.deepEqual(
      history.map((h) => [h.properties.startedBy, h.properties.targetImageReference.version]),
      [["User", "1.2.0"], ["Platform", "1.1.0"]]);
    after = await get();
    wrote("manual run", { [EXACT]: "1.2.0" }, before, after);
    before = after;
  });

  await step("publish 1.3.0, start a manual rolling upgrade and cancel it", async () => {
    await publish("1.3.0");
    const started = upgrades.startOSUpgrade(RG, NAME, POLL);
    await started.submitted(); // the POST was answered: the run exists
    await upgrades.cancel(RG, NAME, POLL);
    await assert.rejects(started.pollUntilDone(), (error) => {
      assert.match(String(error?.message), /cancel/i, describe(error));
      return true;
    }, "the start's operation must end cancelled, not succeeded");
    const latest = await upgrades.getLatest(RG, NAME);
    assert.equal(latest.runningStatus.code, "Cancelled");
    assert.ok(latest.progress.pendingInstanceCount > 0, JSON.stringify(latest.progress));
    const [newest] = await all(vmss.listOSUpgradeHistory(RG, NAME));
    assert.equal(newest.properties.startedBy, "User");
    assert.equal(newest.properties.runningStatus.code, "Cancelled");
    assert.equal(newest.properties.targetImageReference.version, "1.3.0");
    after = await get();
    // A cancelled run changes no model: the scale set still resolves to 1.2.0.
    wrote("cancelled run", {}, before, after);
    before = after;
  });

  await step("reimage instance 2", async () => {
    const vmBefore = await getInstance("2");
    await vms.reimage(RG, NAME, "2", POLL);
    after = await get();
    wrote("reimage", {}, before, after);
    await eventually(() => allHealthy(4), "instance 2 healthy again");
    // A new OS disk from the scale set's image; the data disks and the rest stay.
    const vmAfter = await getInstance("2");
    wrote("reimage (instance 2)", {
      "properties.storageProfile.osDisk.name": CHANGED,
      "properties.instanceView.disks.0.name": CHANGED,
    }, vmBefore, vmAfter);
    assert.equal(vmAfter.properties.storageProfile.imageReference.exactVersion,
      after.properties.virtualMachineProfile.storageProfile.imageReference.exactVersion);
  });

  async function powerStates() {
    const found = await all(vms.list(RG, NAME, { expand: "instanceView" }));
    return Object.fromEntries(found.map((v) => [v.instanceId,
      (v.instanceView?.statuses ?? []).map((s) => s.code)
        .find((c) => c?.startsWith("PowerState/")) ?? "none"]));
  }

  await step("power: stop 0, deallocate 1, start them, restart 3", async () => {
    await vmss.powerOff(RG, NAME, { vmInstanceIDs: { instanceIds: ["0"] }, ...POLL });
    await vmss.deallocate(RG, NAME, { vmInstanceIDs: { instanceIds: ["1"] }, ...POLL });
    const states = await powerStates();
    assert.equal(states["0"], "PowerState/stopped", JSON.stringify(states));
    assert.equal(states["1"], "PowerState/deallocated", JSON.stringify(states));
    assert.equal(states["2"], "PowerState/running", JSON.stringify(states));
    await vmss.start(RG, NAME, POLL);
    await vms.restart(RG, NAME, "3", POLL);
    assert.deepEqual([...new Set(Object.values(await powerStates()))], ["PowerState/running"]);
    after = await get();
    wrote("power actions", {}, before, after);
    before = after;
  });

  await step("delete instance 3 (delete-instances)", async () => {
    await vmss.deleteInstances(RG, NAME, { instanceIds: ["3"] }, POLL);
    after = await get();
    wrote("delete instance 3", { "sku.capacity": 3 }, before, after);
    before = after;
    const left = (await all(vms.list(RG, NAME))).map((v) => v.instanceId).sort();
    assert.deepEqual(left, ["0", "1", "2"]);
  });

  await step("delete the scale set", async () => {
    await vmss.delete(RG, NAME, POLL);
    await assert.rejects(vmss.get(RG, NAME), (error) => error.statusCode === 404,
      "GET after delete must answer 404");
    assert.deepEqual(await all(vmss.list(RG)), []);
  });
}

try {
  await story();
  emit({ done: true });
} catch (error) {
  console.error(`step ${JSON.stringify(current)} failed:\n${describe(error)}`);
  process.exitCode = 1;
}
