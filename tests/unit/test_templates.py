"""The ARM template language (scaleset.templates), pure: expressions, functions, whole templates."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaleset.templates import hashing, syntax
from scaleset.templates import plan as templates
from scaleset.templates.errors import ExpressionError, TemplateError
from scaleset.templates.evaluate import value
from scaleset.templates.scope import Facts, Scope

SUB = "00000000-0000-0000-0000-000000000001"
FACTS = Facts(SUB, "rg", "dep", "westus", api_versions={
    "microsoft.compute/virtualmachinescalesets": ("2026-04-01", "2024-11-01")})
AZ_TEMPLATES = Path(__file__).parents[1] / "integration" / "az_templates"


def ev(expression: str, parameters: dict[str, Any] | None = None,
       variables: dict[str, Any] | None = None) -> Any:
    scope = Scope.create(FACTS, {"variables": variables or {}}, parameters or {})
    return value(expression, scope)


# -- hashes: ARM's published values ---------------------------------------------------------

def test_unique_string_matches_published_arm_values() -> None:
    assert ev("[uniqueString('hello', 'world')]") == "a7wkljktk6wne"
    assert ev("[uniqueString('tyeth')]") == "zcztcwvu6iyg6"
    assert hashing.murmur64(b"hello-world") == 571013382255652050


@given(st.lists(st.text(max_size=40), min_size=1, max_size=4))
def test_unique_string_is_13_base32_characters_and_deterministic(parts: list[str]) -> None:
    out = hashing.unique_string(parts)
    assert len(out) == 13 and set(out) <= set("abcdefghijklmnopqrstuvwxyz234567")
    assert out == hashing.unique_string(list(parts))


@given(st.binary(max_size=40))
def test_murmur_tail_lengths_all_mix_every_byte(data: bytes) -> None:
    # Every tail length (0-7 bytes past the last 8-byte block) takes part in the hash.
    if data:
        flipped = bytes([data[0] ^ 1]) + data[1:]
        assert hashing.murmur64(flipped) != hashing.murmur64(data)


def test_guid_is_a_version_5_uuid_in_arms_namespace() -> None:
    out = ev("[guid('sub', 'rg')]")
    assert out == str(uuid.uuid5(uuid.UUID("11fb06fb-712d-4ddd-98c7-e71bbd588830"), "sub-rg"))
    assert uuid.UUID(out).version == 5


# -- syntax ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("plain", "plain"), ("[[escaped]", "[escaped]"), ("[concat('it''s', 'x')]", "it'sx"),
    ("[ concat( 'a' , 'b' ) ]", "ab"), ("[CONCAT('a')]", "a"), ("[add(-2, 5)]", 3),
])
def test_literals_escapes_and_case_insensitive_names(text: str, expected: Any) -> None:
    assert ev(text) == expected


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_any_string_literal_round_trips(text: str) -> None:
    quoted = "'" + text.replace("'", "''") + "'"
    assert ev(f"[concat({quoted})]") == text


@pytest.mark.parametrize("bad", ["[concat(]", "[concat('a']", "[1 2]", "[concat('a',)]"])
def test_malformed_expressions_are_refused(bad: str) -> None:
    with pytest.raises(ExpressionError, match="is not valid"):
        ev(bad)


def test_expression_length_and_depth_are_limited() -> None:
    with pytest.raises(ExpressionError, match="24576"):
        syntax.parse("[concat('" + "a" * 24_600 + "')]")
    deep = "[" + "not(" * 70 + "true()" + ")" * 70 + "]"
    with pytest.raises(ExpressionError, match="nests deeper"):
        syntax.parse(deep)


# -- functions --------------------------------------------------------------------------------

@pytest.mark.parametrize(("expression", "expected"), [
    ("[resourceId('Microsoft.Network/loadBalancers', 'lb')]",
     f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/loadBalancers/lb"),
    ("[resourceId('other', 'Microsoft.Network/loadBalancers/probes', 'lb', 'p')]",
     f"/subscriptions/{SUB}/resourceGroups/other/providers/Microsoft.Network/loadBalancers/lb/"
     "probes/p"),
    ("[resourceId('s2', 'g2', 'Microsoft.Compute/virtualMachineScaleSets', 'v')]",
     "/subscriptions/s2/resourceGroups/g2/providers/Microsoft.Compute/"
     "virtualMachineScaleSets/v"),
    ("[subscriptionResourceId('Microsoft.Resources/resourceGroups', 'x')]",
     f"/subscriptions/{SUB}/providers/Microsoft.Resources/resourceGroups/x"),
    ("[resourceGroup().location]", "westus"),
    ("[resourceGroup().id]", f"/subscriptions/{SUB}/resourceGroups/rg"),
    ("[subscription().subscriptionId]", SUB),
    ("[deployment().name]", "dep"),
    ("[providers('Microsoft.Compute', 'virtualMachineScaleSets').apiVersions[0]]",
     "2026-04-01"),
    ("[format('{0}-{1:D3}-{{x}}', 'vm', 7)]", "vm-007-{x}"),
    ("[if(equals(1, 1), 'yes', 'no')]", "yes"),
    ("[if(false(), parameters('missing'), 'lazy')]", "lazy"),  # only the branch taken
    ("[string(true())]", "True"), ("[string(createObject('a', 1))]", '{"a":1}'),
    ("[int('42')]", 42), ("[bool('TRUE')]", True), ("[not(true())]", False),
    ("[and(true(), false())]", False), ("[or(false(), true())]", True),
    ("[length('abc')]", 3), ("[length(createArray(1, 2))]", 2),
    ("[toLower('AbC')]", "abc"), ("[toUpper('abc')]", "ABC"),
    ("[empty('')]", True), ("[empty(createArray())]", True), ("[empty(createObject())]", True),
    ("[union(createObject('a', 1), createObject('b', 2))]", {"a": 1, "b": 2}),
    ("[union(createArray(1, 2), createArray(2, 3))]", [1, 2, 3]),
    ("[concat(createArray(1), createArray(2))]", [1, 2]), ("[concat('a', 1)]", "a1"),
    ("[contains('abc', 'b')]", True), ("[replace('a-b', '-', '_')]", "a_b"),
    ("[split('a,b', ',')]", ["a", "b"]), ("[substring('hello', 1, 3)]", "ell"),
    ("[padLeft('7', 3, '0')]", "007"), ("[div(-7, 2)]", -3), ("[mod(-7, 2)]", -1),
    ("[greater(2, 1)]", True), ("[lessOrEquals('a', 'b')]", True),
    ("[take(createArray(1, 2, 3), 2)]", [1, 2]), ("[skip('abc', 1)]", "bc"),
    ("[first(createArray(4, 5))]", 4), ("[last('xyz')]", "z"), ("[range(2, 3)]", [2, 3, 4]),
    ("[min(3, 1, 2)]", 1), ("[max(createArray(3, 9))]", 9), ("[coalesce(null(), 'x')]", "x"),
    ("[json('{\"a\": [1]}').a[0]]", 1), ("[base64ToString(base64('hi'))]", "hi"),
    ("[createObject('k', 'v').K]", "v"),  # member names are case-insensitive
])
def test_builtin_functions(expression: str, expected: Any) -> None:
    assert ev(expression) == expected


def test_parameters_and_variables_including_variable_copy() -> None:
    variables = {"base": "[concat(parameters('p'), '-x')]", "twice": "[concat(variables('base'), "
                 "variables('base'))]", "copy": [{"name": "disks", "count": 2,
                                                   "input": "[copyIndex('disks')]"}]}
    assert ev("[variables('twice')]", {"p": "a"}, variables) == "a-xa-x"
    assert ev("[variables('disks')]", {}, variables) == [0, 1]


def test_a_variable_that_needs_itself_is_refused() -> None:
    with pytest.raises(ExpressionError, match="depends on itself"):
        ev("[variables('a')]", {}, {"a": "[variables('b')]", "b": "[variables('a')]"})


@pytest.mark.parametrize(("expression", "message"), [
    ("[parameters('nope')]", "'nope' is not found"),
    ("[variables('nope')]", "'nope' is not found"),
    ("[createObject('a', 1).b]", "'b' doesn't exist"),
    ("[createArray(1)[3]]", "out of bounds"),
    ("[length(1)]", "expects a parameter of type"),
    ("[not('x')]", "expects a parameter of type Boolean"),
    ("[div(1, 0)]", "divide by zero"),
    ("[copyIndex()]", "not expected at this location"),
    ("[reference('x')]", "not expected at this location"),
    ("[listKeys('x', '2020-01-01')]", "not supported"),
    ("[frobnicate()]", "'frobnicate' is not valid"),
    ("[concat(createObject())]", "all arrays or all strings"),
    ("[format('{1}', 'a')]", "has no argument"),
])
def test_function_errors_name_the_problem(expression: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        ev(expression)


# -- whole templates --------------------------------------------------------------------------

def lb(name: str, *depends: str, **extra: Any) -> dict[str, Any]:
    return {"type": "Microsoft.Network/loadBalancers", "apiVersion": "2024-05-01",
            "name": name, "location": "westus", "dependsOn": list(depends), **extra}


def names(p: templates.Plan) -> list[str]:
    return [r.name for r in p.resources]


def plan_of(*resources: dict[str, Any], **extra: Any) -> templates.Plan:
    return templates.plan({"resources": list(resources), **extra}, {}, FACTS)


def test_dependencies_order_resources_by_id_type_name_or_name() -> None:
    p = plan_of(lb("c", "[resourceId('Microsoft.Network/loadBalancers', 'b')]"),
                lb("b", "Microsoft.Network/loadBalancers/a"), lb("a"), lb("d", "a"))
    assert names(p) == ["a", "b", "d", "c"]  # layer by layer, in template order
    by = {r.name: r for r in p.resources}
    assert by["c"].depends_on == {by["b"].key}


def test_cycles_are_refused_naming_a_resource_on_the_cycle() -> None:
    with pytest.raises(TemplateError, match="Circular dependency detected") as caught:
        plan_of(lb("a", "b"), lb("b", "c"), lb("c", "a"), lb("free"))
    assert "a -> b -> c -> a" in caught.value.message or "b -> c -> a -> b" in \
        caught.value.message or "c -> a -> b -> c" in caught.value.message


def test_an_unknown_dependency_is_refused() -> None:
    with pytest.raises(TemplateError, match="'ghost' is not defined in the template"):
        plan_of(lb("a", "ghost"))


def test_resource_copy_parallel_and_serial_and_depending_on_a_loop() -> None:
    parallel = lb("[concat('p', copyIndex())]", copy={"name": "ps", "count": 3})
    serial = lb("[concat('s', copyIndex(1))]", copy={"name": "ss", "count": 4, "mode": "Serial",
                                                     "batchSize": 2})
    after = lb("after", "ps")
    p = plan_of(parallel, serial, after)
    by = {r.name: r for r in p.resources}
    assert set(by) == {"p0", "p1", "p2", "s1", "s2", "s3", "s4", "after"}
    assert by["after"].depends_on == {by[n].key for n in ("p0", "p1", "p2")}
    assert by["s1"].depends_on == frozenset() and by["s2"].depends_on == frozenset()
    assert by["s3"].depends_on == {by["s1"].key, by["s2"].key} == by["s4"].depends_on


def test_copy_count_and_resource_count_limits() -> None:
    with pytest.raises(TemplateError, match="between 0 and 800"):
        plan_of(lb("[concat('x', copyIndex())]", copy={"name": "x", "count": 801}))
    many = [lb("[concat('x', copyIndex())]", copy={"name": f"l{i}", "count": 800})
            for i in range(2)]
    many[1]["name"] = "[concat('y', copyIndex())]"
    with pytest.raises(TemplateError, match="at most 800"):
        plan_of(*many)


def test_conditions_drop_resources_and_dependencies_on_them() -> None:
    p = plan_of(lb("off", condition="[equals(1, 2)]"), lb("on", "off"))
    assert names(p) == ["on"] and p.resources[0].depends_on == frozenset()


def test_nested_child_resources_are_flattened_with_their_parents_name() -> None:
    parent = lb("lb", resources=[{"type": "inboundNatRules", "apiVersion": "2024-05-01",
                                  "name": "ssh", "dependsOn": ["lb"], "properties": {}}])
    p = plan_of(parent)
    assert [r.type for r in p.resources] == ["Microsoft.Network/loadBalancers",
                                             "Microsoft.Network/loadBalancers/inboundNatRules"]
    assert p.resources[1].id.endswith("/loadBalancers/lb/inboundNatRules/ssh")


def test_duplicate_resources_are_refused() -> None:
    with pytest.raises(TemplateError, match="defined multiple times"):
        plan_of(lb("a"), lb("A"))


def test_unknown_functions_anywhere_are_refused_before_planning() -> None:
    with pytest.raises(TemplateError, match="'nosuch' is not valid"):
        plan_of(lb("a", properties={"deep": ["[nosuch()]"]}))
    with pytest.raises(TemplateError, match="expects 1 parameter"):
        plan_of(lb("a", properties={"x": "[length()]"}))


@pytest.mark.parametrize(("given", "declared", "message"), [
    ({}, {"p": {"type": "string"}}, "'p' is not provided"),
    ({"p": {"value": 1}}, {"p": {"type": "string"}}, "expected a value of type 'String'"),
    ({"q": {"value": 1}}, {"p": {"type": "string", "defaultValue": "x"}}, "not present"),
    ({"p": {"value": "c"}}, {"p": {"type": "string", "allowedValues": ["a", "b"]}},
     "must be one of"),
    ({"p": {"value": 9}}, {"p": {"type": "int", "maxValue": 5}}, "maxValue 5"),
    ({"p": {"reference": {}}}, {"p": {"type": "securestring"}}, "Key Vault"),
])
def test_parameters_are_checked_against_their_declarations(
        given: dict[str, Any], declared: dict[str, Any], message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        templates.plan({"parameters": declared, "resources": []}, given, FACTS)


def test_reference_reads_through_the_resolver_and_outputs_are_camel_cased_and_typed() -> None:
    t = {"resources": [lb("a", properties={"self": "[reference('a').x]"})],
         "outputs": {"FromRef": {"type": "int", "value": "[reference('a').x]"},
                     "Full": {"type": "object", "value": "[reference(resourceId("
                              "'Microsoft.Network/loadBalancers', 'a'), '2024-05-01', 'Full')]"},
                     "Wrong": {"type": "string", "value": "[reference('a').x]",
                               "condition": "[false()]"}}}
    p = templates.plan(t, {}, FACTS)
    seen: list[tuple[str, str | None]] = []

    def resolve(rid: str, api: str | None) -> dict[str, Any]:
        seen.append((rid, api))
        return {"id": rid, "properties": {"x": 5}}

    scope = p.run_scope(resolve)
    assert templates.body(p.resources[0], scope)["properties"] == {"self": 5}
    out = templates.outputs(p.outputs, scope)
    assert out["fromRef"] == {"type": "Int", "value": 5}
    assert out["full"]["value"]["properties"] == {"x": 5}
    assert "wrong" not in out
    assert all(api == "2024-05-01" for _, api in seen)
    with pytest.raises(TemplateError, match="not String"):
        templates.outputs({"o": {"type": "string", "value": "[reference('a').x]"}}, scope)


def test_reference_is_refused_where_it_cannot_work() -> None:
    with pytest.raises(TemplateError, match="'reference' is not expected"):
        plan_of(lb("[reference('x').name]"))


def test_property_copy_expands_into_arrays() -> None:
    p = plan_of(lb("a", properties={"copy": [{"name": "probes", "count": 2, "input": {
        "name": "[concat('p', copyIndex('probes'))]"}}]}))
    body = templates.body(p.resources[0], p.scope)
    assert body["properties"] == {"probes": [{"name": "p0"}, {"name": "p1"}]}


def test_template_size_limit() -> None:
    with pytest.raises(TemplateError, match="bytes; at most"):
        templates.plan({"resources": [], "variables": {"x": "a" * (4 * 1024 * 1024)}}, {},
                       FACTS)


def test_the_template_az_2_91_sends_for_vmss_create_plans() -> None:
    """Captured from ``az vmss create -g rg -n web --image Canonical:UbuntuServer:18.04-LTS:
    latest --instance-count 3 --upgrade-policy-mode Automatic`` (az's default orchestration
    mode, Flexible) as it PUT the deployment."""
    sent = json.loads((AZ_TEMPLATES / "vmss_flexible_default.json").read_text())["properties"]
    p = templates.plan(sent["template"], sent["parameters"], FACTS)
    assert names(p)[-1] == "web"
    assert names(p).index("webLB") < names(p).index("webLB/NatRule")
    vmss = p.resources[-1]
    body = templates.body(vmss, p.run_scope(lambda rid, api: {}))
    profile = body["properties"]["virtualMachineProfile"]
    assert profile["osProfile"]["adminPassword"] == sent["parameters"]["adminPassword"]["value"]
    nic = profile["networkProfile"]["networkInterfaceConfigurations"][0]["properties"]
    assert nic["networkSecurityGroup"]["id"].endswith("/networkSecurityGroups/webNSG")
    assert p.parameters == {"adminPassword": {"type": "SecureString"}}


@pytest.mark.parametrize("module", ["hashing", "syntax", "values"])
def test_docstring_examples(module: str) -> None:
    import doctest
    import importlib

    found = importlib.import_module(f"scaleset.templates.{module}")
    assert doctest.testmod(found).failed == 0
