"""az vmss habits: --ids, --query, -o jsonc|yaml|tsv|table, three-state flags, update's
policy flags, --lb/--health-probe by name, -h, --version; tables and help at 80 columns.

The verbs run from the root command (``scaleset ...``) against a fake ARM server
(``httpx.MockTransport``), as in test_cli_client.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from scaleset.cli import tables, verbs
from scaleset.cli.app import app
from scaleset.cli.client import ClientFactory

ENDPOINT = "https://arm.test:8443"
SUB = "00000000-0000-0000-0000-000000000000"
OTHER_SUB = "11111111-1111-1111-1111-111111111111"
RG = f"/subscriptions/{SUB}/resourceGroups/rg1"
SS = f"{RG}/providers/Microsoft.Compute/virtualMachineScaleSets/vmss1"
NET = f"{RG}/providers/Microsoft.Network/loadBalancers"
LONG_IMAGE = ("/subscriptions/" + SUB + "/resourceGroups/images/providers/Microsoft.Compute/"
              "galleries/gallery1/images/webapp/versions/1.2.3")


def scale_set(name: str = "vmss1", image: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": SS.replace("vmss1", name), "name": name, "location": "westus",
            "sku": {"name": "Standard_D2s_v3", "capacity": 2}, "etag": '"7"',
            "properties": {"provisioningState": "Succeeded", "upgradePolicy": {"mode": "Manual"},
                           "virtualMachineProfile": {"storageProfile": {"imageReference": image or {
                               "publisher": "Canonical", "offer": "ubuntu", "sku": "server",
                               "version": "latest"}}}}}


class Fake:
    """(method, path) → JSON answer; every request is kept."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = {}
        self.requests: list[httpx.Request] = []

    def on(self, method: str, path: str, body: Any, status: int = 200) -> None:
        self.routes[(method, path)] = lambda _: httpx.Response(status, json=body)

    def echo(self, method: str, path: str) -> None:
        """Answer with what was sent (a PUT/PATCH that succeeded at once)."""
        self.routes[(method, path)] = lambda r: httpx.Response(200, json=json.loads(r.content))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = self.routes.get((request.method, request.url.path))
        if route is None:
            return httpx.Response(404, json={"error": {"code": "NotFound",
                                                       "message": request.url.path}})
        return route(request)

    def sent(self, method: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method]


@pytest.fixture
def fake() -> Fake:
    return Fake()


@pytest.fixture
def run(fake: Fake, tmp_path: Path) -> Callable[..., Result]:
    def invoke(*args: str, columns: int = 80) -> Result:
        environ = {"HOME": str(tmp_path), "SCALESET_SERVER": ENDPOINT, "SCALESET_TOKEN": "t",
                   "SCALESET_SUBSCRIPTION": SUB}
        factory = ClientFactory(transport=httpx.MockTransport(fake), sleep=lambda _: None,
                                environ=environ)
        return CliRunner().invoke(app, list(args), obj=factory,
                                  env={"COLUMNS": str(columns), "NO_COLOR": "1"})
    return invoke


# -- tables fit -----------------------------------------------------------------------------

words = st.text(alphabet="abcdefghij-:/.", min_size=1, max_size=40)


@given(headers=st.lists(st.text(alphabet="ABCxyz", min_size=1, max_size=12), min_size=1,
                        max_size=8),
       data=st.data(), width=st.integers(min_value=20, max_value=120))
def test_a_rendered_table_fits_and_cuts_cells_only_at_their_end(
        headers: list[str], data: st.DataObject, width: int) -> None:
    rows = data.draw(st.lists(st.lists(words, min_size=len(headers), max_size=len(headers)),
                              max_size=5))
    chosen = tables.layout(headers, rows, width)
    lines = tables.render(headers, rows, width).splitlines()
    if sum(len(headers[i]) for i, _ in chosen) + 2 * (len(chosen) - 1) <= width:
        assert all(len(line) <= width for line in lines)
    assert [i for i, _ in chosen] == sorted(i for i, _ in chosen)  # order kept
    for row, line in zip(rows, lines[2:], strict=True):
        start = 0
        for index, column_width in chosen:
            shown = line[start:start + column_width].rstrip()
            value = row[index]
            assert shown == value or (shown.endswith("…") and value.startswith(shown[:-1]))
            start += column_width + tables.GAP


def test_a_header_is_never_cut_and_low_priority_columns_go_first() -> None:
    headers = ["Name", "Image", "ProvisioningState"]
    chosen = tables.layout(headers, [["vmss1", LONG_IMAGE, "Succeeded"]], 25)
    assert [i for i, _ in chosen] == [0, 1]
    lines = tables.render(headers, [["vmss1", LONG_IMAGE, "Succeeded"]], 25).splitlines()
    assert lines[0].split() == ["Name", "Image"] and lines[2].endswith("…")


def test_vmss_list_table_fits_80_columns_and_cuts_no_word(run: Callable[..., Result],
                                                          fake: Fake) -> None:
    fake.on("GET", f"{RG}/providers/Microsoft.Compute/virtualMachineScaleSets", {"value": [
        scale_set(), scale_set("a-scale-set-with-a-rather-long-name", {"id": LONG_IMAGE})]})
    for columns in (80, 60):
        result = run("vmss", "list", "-g", "rg1", "-o", "table", columns=columns)
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert all(len(line) <= columns for line in lines), result.stdout
        assert lines[0].split()[:2] == ["Name", "ResourceGroup"]
        assert "…" in result.stdout  # the gallery image id is cut, not wrapped
        assert len(lines) == 4  # header, rule, one line per scale set
        names = [line.split()[0] for line in lines[2:]]
        assert all("a-scale-set-with-a-rather-long-name".startswith(n.rstrip("…"))
                   or n == "vmss1" for n in names)


def test_terminal_width_honours_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "123")
    assert tables.terminal_width() == 123
    monkeypatch.delenv("COLUMNS")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert tables.terminal_width() == tables.DEFAULT_WIDTH


# -- help fits ------------------------------------------------------------------------------

def _verbs() -> Iterator[tuple[list[str], Any]]:
    from scaleset.cli.app import command
    pending: list[tuple[list[str], Any]] = [([], command())]
    while pending:
        path, cmd = pending.pop()
        subcommands = getattr(cmd, "commands", None)
        if subcommands:
            pending.extend(([*path, name], sub) for name, sub in subcommands.items())
        else:
            yield path, cmd


VERBS = sorted(_verbs(), key=lambda item: item[0])


@pytest.mark.parametrize("words", [w for w, _ in VERBS], ids=" ".join)
def test_every_verbs_help_fits_80_columns_with_every_option_whole(
        run: Callable[..., Result], words: list[str]) -> None:
    cmd = dict((tuple(w), c) for w, c in VERBS)[tuple(words)]
    result = run(*words, "--help")
    assert result.exit_code == 0, result.output
    too_long = [line for line in result.stdout.splitlines() if len(line) > 80]
    assert not too_long, too_long
    shown = set(re.findall(r"--?[A-Za-z][\w-]*", result.stdout))
    for param in cmd.params:
        for opt in [*param.opts, *param.secondary_opts]:
            if opt.startswith("-"):
                assert opt in shown, f"{' '.join(words)}: {opt} not whole in its help"


def test_vmss_create_help_names_every_option_whole(run: Callable[..., Result]) -> None:
    text = run("vmss", "create", "-h").stdout
    for opt in ("--upgrade-policy-mode", "--enable-auto-os-upgrade", "--health-probe", "--lb",
                "--max-unhealthy-upgraded-instance-percent", "--use-rolling-upgrade-policy",
                "--query", "--ids", "--output"):
        assert re.search(rf"(^|[\s,]){re.escape(opt)}(\s|$)", text, re.M), opt
    assert "…" not in text


def test_version() -> None:
    result = subprocess.run([sys.executable, "-c", "from scaleset.cli.app import main; main()",
                             "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"scaleset \d+\.\d+\.\d+\S*\n", result.stdout)


# -- output formats and --query -------------------------------------------------------------

def test_query_applies_jmespath_before_any_format(run: Callable[..., Result],
                                                  fake: Fake) -> None:
    fake.on("GET", f"{RG}/providers/Microsoft.Compute/virtualMachineScaleSets",
            {"value": [scale_set(), scale_set("vmss2")]})
    listing = ("vmss", "list", "-g", "rg1")
    assert run(*listing, "--query", "[].name", "-o", "tsv").stdout == "vmss1\nvmss2\n"
    assert run(*listing, "--query", "[].[name, sku.capacity]", "-o", "tsv").stdout == \
        "vmss1\t2\nvmss2\t2\n"
    assert json.loads(run(*listing, "--query", "[0].sku").stdout) == {
        "name": "Standard_D2s_v3", "capacity": 2}
    table = run(*listing, "--query", "[].{name: name, cap: sku.capacity}", "-o", "table")
    assert table.stdout.splitlines()[0].split() == ["Name", "Cap"]
    assert table.stdout.splitlines()[2].split() == ["vmss1", "2"]


def test_a_bad_query_is_a_usage_error_before_any_request(run: Callable[..., Result],
                                                        fake: Fake) -> None:
    result = run("vmss", "show", "-g", "rg1", "-n", "vmss1", "--query", "[?")
    assert result.exit_code == 2 and "JMESPath" in result.output
    assert fake.requests == []


@pytest.mark.parametrize(("fmt", "parse"), [("yaml", yaml.safe_load), ("jsonc", json.loads),
                                            ("json", json.loads)])
def test_yaml_and_jsonc_hold_the_resource(run: Callable[..., Result], fake: Fake, fmt: str,
                                          parse: Callable[[str], Any]) -> None:
    fake.on("GET", SS, scale_set(image={"id": LONG_IMAGE * 3}))
    result = run("vmss", "show", "-g", "rg1", "-n", "vmss1", "-o", fmt)
    assert result.exit_code == 0, result.output
    assert parse(result.stdout) == scale_set(image={"id": LONG_IMAGE * 3})


# -- --ids ----------------------------------------------------------------------------------

def test_ids_fill_group_and_name(run: Callable[..., Result], fake: Fake) -> None:
    fake.on("GET", SS, scale_set())
    result = run("vmss", "show", "--ids", SS, "--query", "name", "-o", "tsv")
    assert result.exit_code == 0, result.output
    assert result.stdout == "vmss1\n"


def test_several_ids_print_one_list_and_use_each_ids_subscription(
        run: Callable[..., Result], fake: Fake) -> None:
    other = SS.replace(SUB, OTHER_SUB).replace("vmss1", "vmss9")
    fake.on("GET", SS, scale_set())
    fake.on("GET", other, scale_set("vmss9"))
    result = run("vmss", "show", "--ids", SS, other, "--query", "[].name")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == ["vmss1", "vmss9"]
    assert [r.url.path for r in fake.requests] == [SS, other]


def test_ids_of_nested_resources(run: Callable[..., Result], fake: Fake) -> None:
    probe = f"{NET}/lb1/probes/http"
    fake.on("GET", probe, {"id": probe, "name": "http"})
    result = run("network", "lb", "probe", "show", "--ids", probe, "--query", "name",
                 "-o", "tsv")
    assert result.exit_code == 0, result.output
    assert result.stdout == "http\n"


@pytest.mark.parametrize(("args", "message"), [
    (("--ids", SS, "-g", "rg1"), "leave out"),
    (("--ids", f"{NET}/lb1"), "lb1' is not a"),
    (("--ids", "vmss1"), "'vmss1' is not a"),
    (("-g", "rg1"), "required unless --ids"),
])
def test_ids_mistakes_are_usage_errors(run: Callable[..., Result], fake: Fake,
                                       args: tuple[str, ...], message: str) -> None:
    result = run("vmss", "show", *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert fake.requests == []


def test_several_ids_on_a_verb_without_output_run_it_for_each(
        run: Callable[..., Result], fake: Fake) -> None:
    second = SS.replace("vmss1", "vmss2")
    for path in (SS, second):
        fake.on("DELETE", path, None, status=200)
    result = run("vmss", "delete", "--ids", SS, second, "--no-wait")
    assert result.exit_code == 0, result.output
    assert [r.url.path for r in fake.sent("DELETE")] == [SS, second]


# -- three-state flags, update's policy flags, --lb/--health-probe ---------------------------

def _create(run: Callable[..., Result], *args: str) -> Result:
    return run("vmss", "create", "-g", "rg1", "-n", "vmss1", "--image",
               "Canonical:ubuntu:server", *args, "--no-wait")


@pytest.mark.parametrize(("args", "expected"), [
    (("--enable-auto-os-upgrade",), True),
    (("--enable-auto-os-upgrade", "true"), True),
    (("--enable-auto-os-upgrade", "false"), False),
    (("--enable-auto-os-upgrade=False",), False),
    (("--enable-auto-os-upgrade", "--zones", "1"), True),
])
def test_enable_auto_os_upgrade_takes_a_value_or_none(
        run: Callable[..., Result], fake: Fake, args: tuple[str, ...], expected: bool) -> None:
    fake.echo("PUT", SS)
    result = _create(run, *args)
    assert result.exit_code == 0, result.output
    body = json.loads(fake.sent("PUT")[0].content)
    assert body["properties"]["upgradePolicy"]["automaticOSUpgradePolicy"] == {
        "enableAutomaticOSUpgrade": expected}


def test_a_three_state_flag_refuses_other_words(run: Callable[..., Result],
                                                fake: Fake) -> None:
    result = run("vmss", "update", "-g", "rg1", "-n", "vmss1", "--max-surge=maybe")
    assert result.exit_code == 2 and "not true or false" in result.output
    assert fake.requests == []


def test_update_policy_flags_patch_the_upgrade_policy(run: Callable[..., Result],
                                                      fake: Fake) -> None:
    fake.on("GET", SS, scale_set())
    fake.echo("PATCH", SS)
    result = run("vmss", "update", "-g", "rg1", "-n", "vmss1", "--enable-auto-os-upgrade",
                 "--max-batch-instance-percent", "20", "--max-unhealthy-instance-percent", "25",
                 "--max-unhealthy-upgraded-instance-percent", "10",
                 "--pause-time-between-batches", "30", "--prioritize-unhealthy-instances",
                 "--enable-cross-zone-upgrade", "false", "--max-surge", "true")
    assert result.exit_code == 0, result.output
    patch = fake.sent("PATCH")[0]
    assert patch.headers["If-Match"] == '"7"'
    assert json.loads(patch.content) == {"properties": {"upgradePolicy": {
        "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True},
        "rollingUpgradePolicy": {
            "maxBatchInstancePercent": 20, "maxUnhealthyInstancePercent": 25,
            "maxUnhealthyUpgradedInstancePercent": 10, "pauseTimeBetweenBatches": "PT30S",
            "prioritizeUnhealthyInstances": True, "enableCrossZoneUpgrade": False,
            "maxSurge": True}}}}


def test_update_needs_set_or_a_policy_flag(run: Callable[..., Result]) -> None:
    result = run("vmss", "update", "-g", "rg1", "-n", "vmss1")
    assert result.exit_code == 2 and "policy flag" in result.output


def _lb(name: str, *probes: str) -> dict[str, Any]:
    return {"id": f"{NET}/{name}", "name": name, "properties": {"probes": [
        {"id": f"{NET}/{name}/probes/{p}", "name": p} for p in probes]}}


def _probe_sent(fake: Fake) -> str:
    body = json.loads(fake.sent("PUT")[0].content)
    return str(body["properties"]["virtualMachineProfile"]["networkProfile"]["healthProbe"]["id"])


def test_health_probe_by_name_in_the_named_lb(run: Callable[..., Result], fake: Fake) -> None:
    fake.on("GET", f"{NET}/lb1", _lb("lb1", "http"))
    fake.echo("PUT", SS)
    result = _create(run, "--lb", "lb1", "--health-probe", "HTTP")
    assert result.exit_code == 0, result.output
    assert _probe_sent(fake) == f"{NET}/lb1/probes/http"


def test_health_probe_by_name_found_in_the_resource_group(run: Callable[..., Result],
                                                          fake: Fake) -> None:
    fake.on("GET", NET, {"value": [_lb("lb0", "tcp"), _lb("lb1", "http")]})
    fake.echo("PUT", SS)
    assert _create(run, "--health-probe", "http").exit_code == 0
    assert _probe_sent(fake) == f"{NET}/lb1/probes/http"


def test_health_probe_id_is_sent_as_is(run: Callable[..., Result], fake: Fake) -> None:
    fake.echo("PUT", SS)
    assert _create(run, "--health-probe", f"{NET}/x/probes/y").exit_code == 0
    assert _probe_sent(fake) == f"{NET}/x/probes/y"
    assert [r.method for r in fake.requests] == ["PUT"]


@pytest.mark.parametrize(("args", "code"), [
    (("--lb", "lb1", "--health-probe", "nope"), "ProbeNotFound"),
    (("--lb", "missing", "--health-probe", "http"), "LoadBalancerNotFound"),
    (("--health-probe", "nope"), "ProbeNotFound"),
    (("--health-probe", "http"), "AmbiguousProbe"),
])
def test_a_probe_that_is_not_there_is_a_clear_error_and_nothing_is_created(
        run: Callable[..., Result], fake: Fake, args: tuple[str, ...], code: str) -> None:
    fake.on("GET", f"{NET}/lb1", _lb("lb1", "http"))
    fake.on("GET", NET, {"value": [_lb("lb1", "http"), _lb("lb2", "http")]})
    result = _create(run, *args)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error ({code}): ")
    assert fake.sent("PUT") == []


def test_lb_without_a_probe_is_refused(run: Callable[..., Result]) -> None:
    result = _create(run, "--lb", "lb1")
    assert result.exit_code == 2 and "--health-probe" in result.output


def test_dash_h_is_help(run: Callable[..., Result]) -> None:
    for words in (("-h",), ("vmss", "-h"), ("vmss", "show", "-h")):
        result = run(*words)
        assert result.exit_code == 0 and "Usage:" in result.stdout, words


def test_truth_reads_az_words() -> None:
    assert [verbs.truth(w, "--x") for w in ("yes", "NO", "1", "0")] == [True, False, True, False]


def test_instance_view_rows_for_tables_the_view_itself_for_yaml_and_queries(
        run: Callable[..., Result], fake: Fake) -> None:
    view = {"statuses": [{"code": "ProvisioningState/succeeded",
                          "displayStatus": "Provisioning succeeded"}]}
    fake.on("GET", SS + "/instanceView", view)
    args = ("vmss", "get-instance-view", "-g", "rg1", "-n", "vmss1")
    assert "ProvisioningState/succeeded" in run(*args, "-o", "table").stdout
    assert yaml.safe_load(run(*args, "-o", "yaml").stdout) == view
    assert run(*args, "--query", "statuses[0].code", "-o", "tsv").stdout == \
        "ProvisioningState/succeeded\n"


def test_a_narrow_table_keeps_the_columns_of_highest_priority_and_cuts_none_below_12() -> None:
    headers = ["Name", "Zones", "Image", "State"]
    row = ["vmss1", "1 2 3", LONG_IMAGE, "Succeeded"]
    chosen = tables.layout(headers, [row], 30, priority=[9, 1, 8, 7])
    assert [i for i, _ in chosen] == [0, 2, 3]
    assert all(w >= min(len(row[i]), tables.MIN_CUT) for i, w in chosen)
