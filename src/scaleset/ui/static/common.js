/* The dashboard's shared helpers: the ARM API with the session cookie, DOM building
   (no innerHTML: every value is text), formats, image-version colours and run states.
   Every URL is checked to be this server's own before it is fetched. */
"use strict";

window.scaleset = (() => {
  const COMPUTE = "2024-07-01";
  const GALLERY = "2024-03-03";
  const SUBSCRIPTIONS = "2022-12-01";
  const meta = document.querySelector('meta[name="scaleset-csrf"]');
  const csrf = meta ? meta.content : "";
  const role = document.body.dataset.role || "";
  const PALETTE_SIZE = 8;

  class ArmError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /** A URL of this server, with query parameters; another origin is refused. */
  function url(path, params) {
    const u = new URL(path, window.location.origin);
    if (u.origin !== window.location.origin) {
      throw new ArmError(0, "OtherOrigin", "refused a URL outside this server: " + u.origin);
    }
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null) u.searchParams.set(key, value);
    }
    return u;
  }

  let signingOut = false;
  function signedOut() {
    // The token was revoked or expired: back to the sign-in page, then here again.
    if (signingOut) return;
    signingOut = true;
    const here = window.location.pathname + window.location.search;
    window.location.assign("/ui/sign-in?next=" + encodeURIComponent(here));
  }

  async function send(method, path, params, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") {
      headers["X-Scaleset-Csrf"] = csrf;  // without it the API refuses a cookie's write
      if (body !== undefined) headers["Content-Type"] = "application/json";
    }
    let response;
    try {
      response = await fetch(url(path, params), {
        method, headers, credentials: "same-origin", cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new ArmError(0, "NetworkError", "The server did not answer (" + err.message + ").");
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (err) { data = null; }
    }
    if (response.status === 401 && method === "GET") signedOut();
    if (!response.ok) {
      const error = data && data.error ? data.error : {};
      throw new ArmError(response.status, error.code || String(response.status),
                         error.message || response.statusText || "The request failed.");
    }
    return { status: response.status, data };
  }

  async function get(path, params) {
    return (await send("GET", path, params)).data;
  }

  function post(path, params, body) {
    return send("POST", path, params, body);
  }

  /** Every item of an ARM list, following nextLink (this server's only), at most `limit`. */
  async function list(path, params, limit = 1000) {
    const items = [];
    let next = url(path, params);
    while (next && items.length < limit) {
      const page = await get(next.pathname + next.search);
      if (Array.isArray(page)) return items.concat(page).slice(0, limit);
      items.push(...(page.value || []));
      next = page.nextLink ? url(page.nextLink) : null;
    }
    return items.slice(0, limit);
  }

  /** An element: h("li", {class: "x", data: {id: 1}, on: {click: f}}, "text", child...) */
  function h(tag, attrs, ...children) {
    return build(document.createElement(tag), attrs, children);
  }

  /** An SVG element, the same way. */
  function s(tag, attrs, ...children) {
    return build(document.createElementNS("http://www.w3.org/2000/svg", tag), attrs, children);
  }

  function build(node, attrs, children) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "data") {
        for (const [k, v] of Object.entries(value)) node.dataset[k] = String(v);
      } else if (key === "on") {
        for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
      } else {
        node.setAttribute(key, value === true ? "" : String(value));
      }
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function replace(node, ...children) {
    node.replaceChildren();
    return build(node, {}, children);
  }

  /** Path parts of an ARM id: {subscription, resourceGroup, name, ...}. */
  function parseId(id) {
    const parts = String(id || "").split("/");
    const after = (key) => {
      const i = parts.findIndex((p) => p.toLowerCase() === key.toLowerCase());
      return i >= 0 && i + 1 < parts.length ? parts[i + 1] : "";
    };
    return { subscription: after("subscriptions"), resourceGroup: after("resourceGroups"),
             name: parts[parts.length - 1] || "", gallery: after("galleries"),
             image: after("images"), version: after("versions") };
  }

  function scaleSetPage(id) {
    const p = parseId(id);
    return "/ui/scale-sets/" + [p.subscription, p.resourceGroup, p.name]
      .map(encodeURIComponent).join("/");
  }

  function imageText(ref) {
    if (!ref) return "—";
    if (ref.id) {
      const p = parseId(ref.id);
      return "gallery " + p.gallery + " / " + p.image + (p.version ? " / " + p.version : "");
    }
    if (ref.sharedGalleryImageId || ref.communityGalleryImageId) {
      return ref.sharedGalleryImageId || ref.communityGalleryImageId;
    }
    return [ref.publisher, ref.offer, ref.sku, ref.version].join(":");
  }

  function policyText(mode, policy) {
    if (mode !== "Rolling") return mode || "—";
    // A policy left out (or a field of it) is Azure's default, as the run applies it.
    const p = { maxBatchInstancePercent: 20, maxUnhealthyInstancePercent: 20,
                maxUnhealthyUpgradedInstancePercent: 20, pauseTimeBetweenBatches: "PT0S",
                ...(policy || {}) };
    return mode + ": batches of " + p.maxBatchInstancePercent + "%, at most " +
      p.maxUnhealthyInstancePercent + "% unhealthy, " + p.maxUnhealthyUpgradedInstancePercent +
      "% of upgraded unhealthy, pause " + duration(isoSeconds(p.pauseTimeBetweenBatches));
  }

  /** Seconds in an ISO 8601 duration such as PT1M30S. */
  function isoSeconds(text) {
    const m = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?)?$/.exec(text || "");
    if (!m) return 0;
    return (+(m[1] || 0)) * 86400 + (+(m[2] || 0)) * 3600 + (+(m[3] || 0)) * 60 + (+(m[4] || 0));
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
    if (seconds > 0 && seconds < 10 && !Number.isInteger(seconds)) return seconds.toFixed(1) + " s";
    const total = Math.max(0, Math.round(seconds));
    if (total < 60) return total + " s";
    const m = Math.floor(total / 60), sec = total % 60;
    if (m < 60) return m + " min" + (sec ? " " + sec + " s" : "");
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  function time(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso : d.toLocaleTimeString([], { hour12: false });
  }

  function dateTime(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso :
      d.toLocaleString([], { hour12: false, year: "numeric", month: "short", day: "numeric",
                             hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  /** Dotted versions in numeric order (1.10.0 after 1.9.0). */
  function compareVersions(a, b) {
    const pa = String(a).split("."), pb = String(b).split(".");
    for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
      const x = parseInt(pa[i] || "0", 10), y = parseInt(pb[i] || "0", 10);
      if (x !== y) return (Number.isNaN(x) ? 0 : x) - (Number.isNaN(y) ? 0 : y);
    }
    return String(a).localeCompare(String(b));
  }

  /** A stable colour class per image version: versions in order, a palette slot each. */
  class VersionColours {
    constructor() { this.known = []; }
    add(versions) {
      for (const v of versions) if (v && !this.known.includes(v)) this.known.push(v);
      this.known.sort(compareVersions);
    }
    slot(version) {
      const i = this.known.indexOf(version);
      return i < 0 ? null : "v" + (i % PALETTE_SIZE);
    }
  }

  /** Each state of an instance in a run: an icon and words (never colour alone). */
  const STATES = {
    pending: { icon: "○", label: "Pending", help: "waits for its batch" },
    inBatch: { icon: "◔", label: "In batch", help: "chosen for the current batch" },
    upgrading: { icon: "↻", label: "Upgrading", help: "getting its new OS disk" },
    waitingForHealth: { icon: "◌", label: "Waiting for health", help: "upgraded; the health wait runs" },
    healthy: { icon: "✔", label: "Healthy", help: "upgraded and passed the health wait" },
    rollingBack: { icon: "↺", label: "Rolling back", help: "its previous OS disk is being restored" },
    rolledBack: { icon: "↺", label: "Rolled back", help: "back on its previous OS disk" },
    failed: { icon: "✖", label: "Failed", help: "its upgrade failed" },
    protected: { icon: "⊗", label: "Protected", help: "protected from scale-set actions" },
    skipped: { icon: "⊘", label: "Skipped", help: "not part of the latest run" },
    idle: { icon: "—", label: "Idle", help: "no run yet" },
  };

  function stateOf(name) {
    return STATES[name] || { icon: "?", label: name || "unknown", help: "" };
  }

  const ACTIVE = new Set(["RollingForward", "RollingBack"]);

  return { COMPUTE, GALLERY, SUBSCRIPTIONS, csrf, role, canAct: role === "contributor",
           ArmError, url, get, post, list, h, s, replace, parseId, scaleSetPage, imageText,
           policyText, isoSeconds, duration, time, dateTime, compareVersions, VersionColours,
           STATES, stateOf, ACTIVE };
})();
