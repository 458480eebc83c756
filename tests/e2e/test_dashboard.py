"""The dashboard in a real headless Chromium against a real ``scaleset serve --driver process``.

Debian's ``chromium`` driven by Playwright for Python (``executable_path``: Playwright's own
browser download cannot work offline); skipped, saying why, where either is missing. The
server runs with TLS as by default (the browser ignores the generated CA), so the session
cookie is a Secure one.

What a user would notice: the grid's cells change colour (image version) while a run
started from the page progresses; cancel from the page stops a run; a reader's page has
no enabled action and the API refuses a reader's POST; and nothing the page asks for is
outside the server. ``SCALESET_DASHBOARD_SCREENSHOT=docs/dashboard.png`` also saves a
1366x768 screenshot mid-rollout (the README's).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.e2e.server import Server, kill_instances, running_server, trusting
from tests.support import wait_for

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is not installed (the test extra)")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed ('make browser' installs it "
                             "where root and apt-get can)")

ROOT = Path(__file__).resolve().parents[2]
WEBAPP = ROOT / "examples" / "images" / "webapp"
SUB = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUB}/resourceGroups/rg1"
LB = RG + "/providers/Microsoft.Network/loadBalancers/lb1"
VERSIONS = (f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westus/publishers/"
            "Contoso/artifacttypes/vmimage/offers/WebApp/skus/1/versions")
COMPUTE = {"api-version": "2024-07-01"}
NETWORK = {"api-version": "2024-05-01"}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOT_ENV = "SCALESET_DASHBOARD_SCREENSHOT"
T = TypeVar("T")
SETS = (("web", 6, 34, False), ("api", 3, 34, False), ("hold", 2, 50, True))
"""Scale sets: name, capacity, maxBatchInstancePercent, deferred automatic upgrade (web: 3
batches of 2, api: 3 of 1, runs started from the page; hold: an automatic upgrade that waits
for approval)."""


def scale_set(name: str) -> str:
    return f"{RG}/providers/Microsoft.Compute/virtualMachineScaleSets/{name}"


def page_of(name: str) -> str:
    return f"/ui/scale-sets/{SUB}/rg1/{name}"




def call(http: httpx.Client, method: str, path: str, body: Any = None,
         params: dict[str, str] = COMPUTE) -> Any:
    response = http.request(method, path, json=body, params=params)
    assert response.status_code in (200, 201, 202), (method, path, response.text)
    return response.json() if response.content else None


def healthy_count(http: httpx.Client, name: str) -> int:
    items = call(http, "GET", scale_set(name) + "/virtualMachines",
                 params={**COMPUTE, "$expand": "instanceView"})["value"]
    return sum(1 for i in items if i["properties"]["instanceView"]["vmHealth"]["status"]["code"]
               == "HealthState/healthy")


@dataclass
class Live:
    server: Server
    http: httpx.Client
    reader: str
    origins: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One server, scale sets on webapp 1.0.0 (``SETS``), then 1.1.0 published for them to
    roll to; and a reader token."""
    data_dir = tmp_path_factory.mktemp("dashboard")
    try:
        # A 20 s health timeout: the countdown of a health wait has something to count.
        with running_server(data_dir, driver="process", health_timeout="20") as server, \
                httpx.Client(
                base_url=server.endpoint, verify=trusting(server.ca), timeout=15,
                trust_env=False, headers={"Authorization": f"Bearer {server.token}"}) as http:
            call(http, "PUT", f"{VERSIONS}/1.0.0", {
                "location": "westus", "properties": {"source": {"path": str(WEBAPP / "1.0.0")}}})
            call(http, "PUT", LB, {"location": "westus", "sku": {"name": "Standard"},
                                   "properties": {"probes": [{"name": "http", "properties": {
                                       "protocol": "Http", "port": 8080,
                                       "requestPath": "/health", "intervalInSeconds": 1,
                                       "numberOfProbes": 1}}]}}, params=NETWORK)
            for name, capacity, batch, deferred in SETS:
                call(http, "PUT", scale_set(name), {
                    "location": "westus", "sku": {"name": "Standard_D2s_v3",
                                                  "capacity": capacity},
                    "properties": {
                        "upgradePolicy": {
                            "mode": "Rolling",
                            "automaticOSUpgradePolicy": {
                                "enableAutomaticOSUpgrade": deferred,
                                "osRollingUpgradeDeferral": deferred},
                            # Small batches, a pause between: a run to watch and to cancel.
                            "rollingUpgradePolicy": {
                                "maxBatchInstancePercent": batch,
                                "maxUnhealthyInstancePercent": 100,
                                "maxUnhealthyUpgradedInstancePercent": 100,
                                "pauseTimeBetweenBatches": "PT2S"}},
                        "virtualMachineProfile": {
                            "osProfile": {"computerNamePrefix": name,
                                          "adminUsername": "azureuser"},
                            "storageProfile": {"imageReference": {
                                "publisher": "Contoso", "offer": "WebApp", "sku": "1",
                                "version": "latest"}},
                            "networkProfile": {"healthProbe": {"id": LB + "/probes/http"}}}}})
            for name, capacity, _, _ in SETS:
                wait_for(lambda n=name, c=capacity: healthy_count(http, n) == c,  # type: ignore[misc]
                         timeout=60, what=f"{name}'s instances healthy")
            call(http, "PUT", f"{VERSIONS}/1.1.0", {
                "location": "westus", "properties": {"source": {"path": str(WEBAPP / "1.1.0")}}})
            reader = http.post("/scaleset/tokens", json={"role": "reader", "name": "dashboard"})
            assert reader.status_code == 201, reader.text
            yield Live(server, http, reader.json()["token"])
    finally:
        kill_instances(data_dir)


@pytest.fixture
def browser_page(live: Live) -> Iterator[Any]:
    """A fresh browser context at 1366x768 that records the origin of every request."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(ignore_https_errors=True,
                                      viewport={"width": 1366, "height": 768})
        live.origins.clear()
        context.on("request", lambda request: live.origins.append(request.url))
        page = context.new_page()
        page.set_default_timeout(20_000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            yield page
        finally:
            context.close()
            browser.close()
    assert errors == [], errors  # the page's own JavaScript never failed
    # Every request the page made went to this server: no CDN, no font, no beacon.
    assert live.origins, "the page made no request at all?"
    outside = [u for u in live.origins if not u.startswith(live.server.endpoint + "/")]
    assert outside == [], outside


def sign_in(page: Any, live: Live, token: str, path: str) -> None:
    """Sign in through the form, as a person would; lands on ``path``."""
    page.goto(live.server.endpoint + path)
    assert "/ui/sign-in" in page.url  # no session yet: sent to sign in first
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live.server.endpoint + path)


def cells(page: Any) -> list[dict[str, str]]:
    """Each grid cell: its image version, colour class, painted colour, state and text."""
    result: list[dict[str, str]] = page.eval_on_selector_all("#grid .cell", """cells =>
        cells.map(c => ({id: c.dataset.instanceId, version: c.dataset.imageVersion,
                         state: c.dataset.state, health: c.dataset.health,
                         slot: [...c.classList].find(k => /^v[0-9]$/.test(k)) || "",
                         colour: getComputedStyle(c).backgroundColor, text: c.innerText}))""")
    return result


CONTRAST = r"""() => {
    // WCAG 2 contrast of every visible text against the background it is painted on.
    const channel = (v) => {
        v /= 255;
        return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    };
    const luminance = ([r, g, b]) =>
        0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
    const rgba = (c) => (c.match(/[\d.]+/g) || []).map(Number);
    const background = (el) => {
        for (let e = el; e; e = e.parentElement) {
            const c = rgba(getComputedStyle(e).backgroundColor);
            if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
        }
        return [255, 255, 255];
    };
    const low = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        const el = n.parentElement;
        if (!n.textContent.trim() || !el.getClientRects().length || el.closest("svg")) continue;
        const [hi, lo] = [luminance(rgba(getComputedStyle(el).color)), luminance(background(el))]
            .sort((a, b) => b - a);
        const ratio = (hi + 0.05) / (lo + 0.05);
        if (ratio < 4.5) low.push(n.textContent.trim().slice(0, 40) + ": " + ratio.toFixed(2));
    }
    return low;
}"""


def readable(page: Any) -> None:
    """Text contrast at least 4.5:1 everywhere, and nothing wider than a 1366 px laptop."""
    assert page.evaluate(CONTRAST) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366


def until(page: Any, expression: str, *, timeout: float = 30, what: str = "") -> None:
    """Poll a JavaScript expression from here: the page's CSP (rightly) refuses the string
    evaluation Playwright's wait_for_function would do inside it."""
    wait_for(lambda: page.evaluate(expression), timeout=timeout, what=what or expression)


BUSY = frozenset({"inBatch", "upgrading", "waitingForHealth"})
RECORD_RENDERS = """() => {
    window.scalesetRenders = [];
    const grid = document.getElementById("grid");
    new MutationObserver(() => window.scalesetRenders.push([...grid.querySelectorAll(".cell")]
        .map(c => ({version: c.dataset.imageVersion, state: c.dataset.state, text: c.innerText,
                    colour: getComputedStyle(c).backgroundColor}))))
        .observe(grid, {childList: true, subtree: true, characterData: true});
}"""


def run_status(page: Any) -> str:
    text: str = page.locator("#run-status").inner_text()
    return text


def test_the_grid_changes_colour_while_a_run_started_from_the_page_progresses(
        live: Live, browser_page: Any) -> None:
    page = browser_page
    sign_in(page, live, live.server.token, page_of("web"))
    page.wait_for_selector("#grid .cell")
    before = wait_for(lambda: (c := cells(page)) and len(c) == 6 and c, timeout=20,
                      what="6 cells")
    assert {c["version"] for c in before} == {"1.0.0"}
    assert len({c["colour"] for c in before}) == 1
    old_colour = before[0]["colour"]
    assert all("Idle" in c["text"] or "Skipped" in c["text"] for c in before), before

    # Every render of the grid, recorded in the page as it happens (no sampling gaps).
    page.evaluate(RECORD_RENDERS)
    page.get_by_role("button", name="Start rolling upgrade").click()
    until(page, "document.getElementById('action-result').textContent.includes('accepted')")

    screenshot = os.environ.get(SCREENSHOT_ENV)
    shot = ""  # "" none yet; "some": mid-rollout; "best": a batch done, one busy, one to come
    deadline = time.monotonic() + 150
    while "Completed" not in (status := run_status(page)):
        assert time.monotonic() < deadline, ("the run did not complete", status)
        if screenshot and shot != "best":
            snapshot = cells(page)
            versions = {c["version"] for c in snapshot}
            states = {c["state"] for c in snapshot}
            if versions == {"1.0.0", "1.1.0"} and "pending" in states and (
                    "batch 2 of 3" in status or not shot):
                best = "healthy" in states and bool(states & BUSY) and "batch 2 of 3" in status
                if best or not shot:
                    page.screenshot(path=str(ROOT / screenshot))
                    shot = "best" if best else "some"
        time.sleep(0.1)
    after = wait_for(lambda: (c := cells(page)) and {x["version"] for x in c} == {"1.1.0"}
                     and c, timeout=20, what="every cell on 1.1.0")

    # The colour changed, instance by instance, while the run went on — live, no reload.
    assert len({c["colour"] for c in after}) == 1 and after[0]["colour"] != old_colour
    seen: list[list[dict[str, str]]] = page.evaluate("window.scalesetRenders")
    mixed = [s for s in seen if len({c["colour"] for c in s}) == 2]
    assert mixed, "no moment showed both versions' colours"
    states = {c["state"] for s in seen for c in s}
    assert states & BUSY and "pending" in states, states
    # Waiting for health always says how long is left (the countdown).
    waiting = [c["text"] for s in seen for c in s if c["state"] == "waitingForHealth"]
    assert all("s left" in text for text in waiting), waiting
    assert all(c["state"] == "healthy" and "Healthy" in c["text"] for c in after), after
    readable(page)
    # Text and legend too, never colour alone.
    legend = page.locator("#version-legend").inner_text()
    assert "1.1.0 · 6 instances" in legend
    assert page.locator("#timeline svg rect.bar").count() == 3  # one bar per batch
    assert page.locator("#gate-chart svg").count() >= 1
    # The history row follows the run's end (the RunFinished event refetches it).
    until(page, "document.querySelector('#history-body tr').innerText.includes('Completed')",
          timeout=15)
    assert any("follow=true" in u for u in live.origins), "the page never opened the stream"
    assert not screenshot or shot, "no mid-rollout moment to screenshot"


def test_cancel_from_the_page_stops_the_run_after_its_batch(
        live: Live, browser_page: Any) -> None:
    page = browser_page
    sign_in(page, live, live.server.token, page_of("api"))
    page.wait_for_selector("#grid .cell")
    page.get_by_role("button", name="Start rolling upgrade").click()
    wait_for(lambda: any(c["version"] == "1.1.0" for c in cells(page)), timeout=60,
             what="the first instance on 1.1.0")
    cancel = page.get_by_role("button", name="Cancel the run")
    assert cancel.is_enabled()
    cancel.click()
    until(page, "document.getElementById('action-result').textContent.includes('Cancel accepted')")
    wait_for(lambda: "Cancelled" in run_status(page), timeout=60, what="the run cancelled")
    final = cells(page)
    assert {c["version"] for c in final} == {"1.0.0", "1.1.0"}, final  # stopped part-way
    assert any(c["state"] == "pending" for c in final), final  # ...with some never reached
    latest = call(live.http, "GET", scale_set("api") + "/rollingUpgrades/latest")
    assert latest["properties"]["runningStatus"]["code"] == "Cancelled"
    assert page.get_by_role("button", name="Start rolling upgrade").is_enabled()
    assert not cancel.is_enabled()


def test_a_reader_page_has_no_enabled_action_and_the_api_refuses_its_post(
        live: Live, browser_page: Any) -> None:
    page = browser_page
    sign_in(page, live, live.reader, page_of("web"))
    page.wait_for_selector("#grid .cell")
    until(page, "document.getElementById('run-status').textContent !== 'Loading…'")
    assert page.locator("header .role").inner_text().lower() == "reader"
    buttons = page.locator(".actions button")
    assert buttons.count() == 3
    assert all(buttons.nth(i).is_disabled() for i in range(3))
    assert "reader token" in page.locator("#reader-note").inner_text()
    # Whatever the page shows, the API decides: the reader's own session, with the page's
    # CSRF value, is refused.
    answer = page.evaluate("""async (path) => {
        const csrf = document.querySelector('meta[name="scaleset-csrf"]').content;
        const r = await fetch(path + "?api-version=2024-07-01", {method: "POST",
            credentials: "same-origin", headers: {"X-Scaleset-Csrf": csrf}});
        return {status: r.status, body: await r.json()};
    }""", scale_set("web") + "/osRollingUpgrade")
    assert answer["status"] == 403, answer
    assert answer["body"]["error"]["code"] == "AuthorizationFailed"
    # The session cookie itself is out of the page's reach (HttpOnly).
    assert "scaleset_session" not in page.evaluate("document.cookie")


def test_the_scale_sets_and_images_pages_show_what_the_api_has(
        live: Live, browser_page: Any) -> None:
    page = browser_page
    sign_in(page, live, live.reader, "/ui/")
    until(page, "document.querySelectorAll('#scale-sets-body tr').length === 3")
    rows = page.locator("#scale-sets-body tr")
    web = rows.filter(has_text="web").first.inner_text()
    assert "rg1" in web and "Contoso:WebApp:1:latest" in web and "Rolling" in web
    assert "Off" in web
    until(page, "!document.querySelector('#scale-sets-body td.run').innerText"
                           ".includes('…')")
    readable(page)
    page.get_by_role("link", name="Images").click()
    until(page, "document.getElementById('images-status').textContent"
                           ".includes('platform skus')")
    catalog = page.locator("#platform-images").inner_text()
    assert catalog.count("Contoso:WebApp:1") == 1 and "1.0.0, 1.1.0" in catalog
    # Keyboard: the first Tab reaches the skip link, which is visible when focused.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to the content"


def test_a_deferred_automatic_upgrade_is_shown_pending_and_approved_from_the_page(
        live: Live, browser_page: Any) -> None:
    page = browser_page
    sign_in(page, live, live.server.token, page_of("hold"))
    until(page, "document.querySelector('#pending [data-code]') !== null", timeout=30,
          what="the pending upgrade shown")
    pending = page.locator("#pending").inner_text()
    assert "1.1.0" in pending and "approv" in pending.lower(), pending
    assert page.locator("#pending [data-code]").get_attribute("data-code") == \
        "OSUpgrade/AwaitingApproval"
    approve = page.get_by_role("button", name="Approve the deferred upgrade")
    assert approve.is_enabled()
    assert page.get_by_role("button", name="Cancel the run").is_disabled()  # nothing runs yet
    approve.click()
    until(page, "document.getElementById('action-result').textContent.includes('Approved')")
    wait_for(lambda: "Completed" in run_status(page), timeout=60, what="the approved run")
    assert "Platform" in page.locator("#run-facts").inner_text()  # an automatic run, approved
    until(page, "!document.querySelector('#pending [data-code]')", timeout=15,
          what="nothing pending any more")
    assert approve.is_disabled()
