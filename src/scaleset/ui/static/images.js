/* Images: platform image versions per location and sku, and gallery image versions with
   their replication to each target region. `galleryTable` is shared with the scale set
   page (its own image's versions). */
"use strict";

window.scalesetImages = (() => {
  const ui = window.scaleset;
  const { h } = ui;
  const MAX_SKUS = 100;
  const MAX_VERSIONS_DETAILED = 10;

  /** Gallery image versions (each read with $expand=ReplicationStatus) as a table. */
  function galleryTable(versions, colours) {
    if (!versions.length) return h("p", { class: "muted" }, "No versions in this image definition yet.");
    return h("table", {},
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Version"),
        h("th", { scope: "col" }, "Provisioning"), h("th", { scope: "col" }, "Replication"),
        h("th", { scope: "col" }, "Regions"))),
      h("tbody", {}, versions.map((v) => {
        const props = v.properties || {};
        const status = props.replicationStatus || {};
        const slot = colours ? colours.slot(v.name) : null;
        return h("tr", { data: { version: v.name } },
          h("td", {}, slot ? h("span", { class: "swatch " + slot, "aria-hidden": "true" }) : null,
            " " + v.name, (props.publishingProfile || {}).excludeFromLatest ? " (excluded from latest)" : ""),
          h("td", {}, stateText(props.provisioningState)),
          h("td", {}, stateText(status.aggregatedState)),
          h("td", {}, h("ul", { class: "replication" }, (status.summary || []).map((r) =>
            h("li", {}, r.region + ": ", stateText(r.state),
              r.progress !== undefined && r.state !== "Completed" ? " " + r.progress + "%" : "",
              r.details ? h("span", { class: "muted" }, " (" + r.details + ")") : null)))));
      })));
  }

  function stateText(state) {
    if (!state) return h("span", { class: "muted" }, "—");
    const icon = { Completed: "✔", Succeeded: "✔", Failed: "✖" }[state] || "…";
    return h("span", { class: "state-text-" + state }, icon + " " + state);
  }

  async function page() {
    const status = document.getElementById("images-status");
    const platform = document.getElementById("platform-images");
    const galleries = document.getElementById("gallery-images");
    const V = { "api-version": ui.COMPUTE };
    try {
      const subs = await ui.list("/subscriptions", { "api-version": ui.SUBSCRIPTIONS });
      const skuRows = [];
      const skusSeen = new Set();  // platform images belong to a location, not a subscription
      const galleryBlocks = [];
      for (const sub of subs) {
        const base = "/subscriptions/" + encodeURIComponent(sub.subscriptionId);
        const locations = await ui.list(base + "/locations", { "api-version": ui.SUBSCRIPTIONS });
        for (const loc of locations) {
          const at = base + "/providers/Microsoft.Compute/locations/" + encodeURIComponent(loc.name);
          for (const pub of await ui.get(at + "/publishers", V)) {
            const offers = await ui.get(at + "/publishers/" + encodeURIComponent(pub.name) +
                                        "/artifacttypes/vmimage/offers", V);
            for (const offer of offers) {
              const skuPath = at + "/publishers/" + encodeURIComponent(pub.name) +
                "/artifacttypes/vmimage/offers/" + encodeURIComponent(offer.name) + "/skus";
              for (const sku of await ui.get(skuPath, V)) {
                const key = [loc.name, pub.name, offer.name, sku.name].join(":").toLowerCase();
                if (skuRows.length >= MAX_SKUS || skusSeen.has(key)) continue;
                skusSeen.add(key);
                const versions = await ui.get(skuPath + "/" + encodeURIComponent(sku.name) + "/versions", V);
                skuRows.push(h("tr", {}, h("td", {}, loc.name),
                  h("td", {}, pub.name + ":" + offer.name + ":" + sku.name),
                  h("td", {}, versions.map((v) => v.name).sort(ui.compareVersions).join(", ") || "—")));
              }
            }
          }
        }
        const found = await ui.list(base + "/providers/Microsoft.Compute/galleries",
                                    { "api-version": ui.GALLERY }, 100);
        for (const gallery of found) {
          const images = await ui.list(gallery.id + "/images", { "api-version": ui.GALLERY }, 100);
          const block = h("section", { class: "panel", "aria-label": "Gallery " + gallery.name },
            h("h3", {}, "Gallery " + gallery.name + " ", h("span", { class: "muted" },
              "(" + ui.parseId(gallery.id).resourceGroup + ", " + gallery.location + ")")));
          if (!images.length) block.append(h("p", { class: "muted" }, "No image definitions."));
          for (const image of images) {
            const versions = await ui.list(image.id + "/versions", { "api-version": ui.GALLERY }, 200);
            const names = versions.map((v) => v.name).sort(ui.compareVersions).reverse()
              .slice(0, MAX_VERSIONS_DETAILED);
            const detailed = [];
            for (const name of names) {
              detailed.push(await ui.get(image.id + "/versions/" + encodeURIComponent(name),
                { "api-version": ui.GALLERY, $expand: "ReplicationStatus" }));
            }
            block.append(h("h4", {}, "Image " + image.name), galleryTable(detailed, null));
          }
          galleryBlocks.push(block);
        }
      }
      ui.replace(platform, skuRows.length ? h("table", {},
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Location"),
          h("th", { scope: "col" }, "Publisher:offer:sku"), h("th", { scope: "col" }, "Versions"))),
        h("tbody", {}, skuRows)) : h("p", { class: "muted" }, "No platform image published yet."));
      ui.replace(galleries, galleryBlocks.length ? galleryBlocks
        : h("p", { class: "muted" }, "No gallery yet."));
      status.textContent = skuRows.length + " platform skus, " + galleryBlocks.length + " galleries.";
    } catch (err) {
      status.textContent = "Could not read the images: " + err.message;
      status.classList.add("error");
    }
  }

  if (document.body.dataset.page === "images") page();
  return { galleryTable };
})();
