"""Admission decisions: owner stamping, immutable fields, class limits with useful messages."""

from __future__ import annotations

from typing import Any

import pytest

from sandboxer.api.sandbox import ExperimentSandboxSpec
from sandboxer.sandbox_rules import (
    AllowAllBudgets,
    BudgetRequest,
    Requester,
    check_changer,
    check_owner,
    is_operator,
    owner_groups,
    owner_to_stamp,
    unattributed,
    validate_sandbox,
)
from tests.sandbox_fixtures import example_class

ALICE = Requester("alice")
BOB = Requester("bob")
OPERATOR = Requester("system:serviceaccount:sandboxer:operator", is_operator=True)
H100 = example_class()


def spec(**fields: Any) -> ExperimentSandboxSpec:
    return ExperimentSandboxSpec.model_validate({"class": "h100", "gpus": 1, **fields})


def test_owner_is_stamped_from_the_user_on_create_even_over_a_claimed_owner() -> None:
    assert owner_to_stamp("CREATE", None, None, ALICE) == "alice"
    assert owner_to_stamp("CREATE", "bob", None, ALICE) == "alice"


def test_operator_may_create_on_behalf_of_someone() -> None:
    assert owner_to_stamp("CREATE", "alice", None, OPERATOR) is None
    assert owner_to_stamp("CREATE", None, None, OPERATOR) == OPERATOR.username


def test_update_without_owner_keeps_the_stored_owner() -> None:
    assert owner_to_stamp("UPDATE", None, "alice", BOB) == "alice"
    assert owner_to_stamp("UPDATE", "alice", "alice", BOB) is None
    assert owner_to_stamp("UPDATE", "bob", "alice", BOB) is None  # left for the validator


def test_bob_cannot_change_alices_owner() -> None:
    errors = validate_sandbox(spec(owner="bob"), spec(owner="alice"), "h100", H100, BOB)
    assert len(errors) == 1
    assert "spec.owner" in errors[0]
    assert "'alice'" in errors[0]
    assert "bob" in errors[0]


def test_the_operator_may_change_the_owner() -> None:
    assert validate_sandbox(spec(owner="bob"), spec(owner="alice"), "h100", H100, OPERATOR) == []


def test_alice_may_edit_her_own_sandbox() -> None:
    assert (
        validate_sandbox(
            spec(owner="alice", suspend=True), spec(owner="alice"), "h100", H100, ALICE
        )
        == []
    )


def test_over_the_gpu_limit_names_the_limit_and_the_fix() -> None:
    [error] = validate_sandbox(spec(owner="alice", gpus=9), None, "h100", H100, ALICE)
    assert "spec.gpus" in error
    assert "maxGpus 8" in error
    assert "at most 8" in error


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"image": "docker.io/evil/miner"}, ["spec.image", "quay.io/jupyter/*"]),
        ({"resources": {"cpu": "65"}}, ["spec.resources.cpu", "at most 64"]),
        ({"resources": {"memory": "1Ti"}}, ["spec.resources.memory", "512Gi"]),
        ({"storage": {"size": "2Ti"}}, ["spec.storage.size", "1Ti"]),
        ({"idle": {"after": "5h"}}, ["spec.idle.after", "4h"]),
        ({"idle": {"disabled": True}}, ["spec.idle.disabled", "opting out"]),
        ({"lifetime": "200h"}, ["spec.lifetime", "168h"]),
        ({"env": [{"name": "JUPYTER_TOKEN", "value": "x"}]}, ["JUPYTER_TOKEN"]),
    ],
)
def test_class_limits(fields: dict[str, Any], words: list[str]) -> None:
    errors = validate_sandbox(spec(owner="alice", **fields), None, "h100", H100, ALICE)
    assert len(errors) == 1, errors
    for word in words:
        assert word in errors[0]


def test_allowed_images_and_defaults_pass() -> None:
    ok = spec(
        owner="alice",
        image="quay.io/jupyter/scipy-notebook:2024",
        gpus=8,
        resources={"cpu": "64"},
        idle={"after": "4h"},
        lifetime="168h",
    )
    assert validate_sandbox(ok, None, "h100", H100, ALICE) == []


def test_class_and_storage_are_immutable() -> None:
    old = spec(owner="alice", storage={"size": "200Gi"})
    errors = validate_sandbox(
        spec(owner="alice", storage={"size": "150Gi"}), old, "h100", H100, ALICE
    )
    assert errors == [
        "spec.storage.size: cannot shrink the workspace from 200Gi to 150Gi; volumes only grow, "
        "so keep at least 200Gi"
    ]
    new_class = spec(owner="alice", **{"class": "a100"})
    [error] = validate_sandbox(new_class, spec(owner="alice"), "a100", H100, ALICE)
    assert "spec.class" in error
    assert "create a new sandbox" in error
    # Dropping an explicit size back to a smaller class default is a shrink too.
    assert validate_sandbox(spec(owner="alice"), old, "h100", H100, ALICE)


def test_unknown_class_refused_on_create_only() -> None:
    [error] = validate_sandbox(spec(owner="alice"), None, "h100", None, ALICE)
    assert "does not exist" in error
    assert "kubectl get sandboxclasses" in error
    suspend = spec(owner="alice", suspend=True)
    assert validate_sandbox(suspend, spec(owner="alice"), "h100", None, ALICE) == []


def test_unchanged_sandbox_stays_editable_after_the_class_tightens() -> None:
    tight = example_class(maxGpus=1)
    old = spec(owner="alice", gpus=4)
    assert validate_sandbox(old, old, "h100", tight, ALICE) == []


def test_operator_identity_by_user_or_group() -> None:
    users = ["system:serviceaccount:sandboxer:operator", "system:masters"]
    assert is_operator("system:serviceaccount:sandboxer:operator", [], users)
    assert is_operator("admin", ["system:masters"], users)
    assert not is_operator("alice", ["system:authenticated"], users)


async def test_default_budget_gate_allows() -> None:
    request = BudgetRequest("CREATE", "alice", "team-a", "nb", "h100", 1, 1.0, dry_run=False)
    assert (await AllowAllBudgets().check(request)).allowed


@pytest.mark.parametrize(
    ("owner", "annotations", "unknown"),
    [
        (None, {}, "No spec.owner"),
        ("", {"sandboxer.io/admission": "webhook"}, "No spec.owner"),
        ("alice", {}, "groups of 'alice' are unknown"),
        ("alice", {"sandboxer.io/owner-groups": ""}, None),  # an admin said: no groups
        ("alice", {"sandboxer.io/admission": "webhook"}, None),  # the operator created it
    ],
)
def test_a_sandbox_nobody_can_be_billed_for_is_named(
    owner: str | None, annotations: dict[str, str], unknown: str | None
) -> None:
    problem = unattributed(owner, annotations)
    if unknown is None:
        assert problem is None
    else:
        assert problem is not None
        reason, message = problem
        assert reason == "OwnerUnknown"
        assert unknown in message
        assert "spec.owner" in message and "sandboxer.io/owner-groups" in message


def test_owner_groups_read_as_stamped() -> None:
    assert owner_groups({"sandboxer.io/owner-groups": "team-ml, system:authenticated"}) == (
        "team-ml",
        "system:authenticated",
    )
    assert owner_groups({"sandboxer.io/owner-groups": ""}) == ()
    assert owner_groups({}) == ()


GROUPS = {"sandboxer.io/owner-groups": "team-ml", "sandboxer.io/admission": "webhook"}


@pytest.mark.parametrize("operation", ["UPDATE", "DELETE"])
def test_only_the_owner_an_admin_or_the_operator_changes_a_sandbox(operation: Any) -> None:
    carol = Requester("carol", ("team-ml",))
    [refusal] = check_changer(operation, "alice", carol, GROUPS, GROUPS)
    assert "belongs to 'alice'" in refusal and "you are carol" in refusal
    assert ("delete it" in refusal) == (operation == "DELETE")
    assert check_changer(operation, "alice", Requester("alice"), GROUPS, GROUPS) == []
    assert check_changer(operation, "alice", Requester("root", is_admin=True), GROUPS, {}) == []
    assert check_changer(operation, "alice", OPERATOR, GROUPS, {}) == []


def test_nobody_but_admins_rewrites_what_admission_stamped() -> None:
    forged = {**GROUPS, "sandboxer.io/owner-groups": "team-vision"}
    [refusal] = check_changer("UPDATE", "alice", Requester("alice"), GROUPS, forged)
    assert refusal.startswith("metadata.annotations[sandboxer.io/owner-groups]")
    assert check_changer("UPDATE", "alice", Requester("alice"), GROUPS, GROUPS) == []


def test_an_admin_may_hand_a_sandbox_to_someone_else_but_not_create_for_them() -> None:
    admin = Requester("root", is_admin=True)
    assert check_owner(spec(owner="bob"), spec(owner="alice"), admin) == []
    assert check_owner(spec(owner="bob"), None, admin) != []


@pytest.mark.parametrize(
    ("fields", "field", "default"),
    [
        ({"resources": {"cpu": "-1"}}, "spec.resources.cpu", "8 per GPU"),
        ({"resources": {"cpu": -2}}, "spec.resources.cpu", "8 per GPU"),
        ({"resources": {"cpu": "0"}}, "spec.resources.cpu", "8 per GPU"),
        ({"resources": {"memory": "-64Gi"}}, "spec.resources.memory", "64Gi per GPU"),
        ({"resources": {"memory": "0Mi"}}, "spec.resources.memory", "64Gi per GPU"),
        ({"storage": {"size": "-100Gi"}}, "spec.storage.size", "100Gi"),
        ({"storage": {"size": "0"}}, "spec.storage.size", "100Gi"),
        ({"storage": {"size": "-1e3"}}, "spec.storage.size", "100Gi"),
    ],
)
def test_a_quantity_at_or_below_zero_is_refused_naming_the_field(
    fields: dict[str, Any], field: str, default: str
) -> None:
    [error] = validate_sandbox(spec(owner="alice", **fields), None, "h100", H100, ALICE)
    assert error.startswith(f"{field}: ")
    assert "not a positive quantity" in error
    assert f"leave {field} out for the class default ({default})" in error


def test_every_non_positive_quantity_is_named_even_without_the_class() -> None:
    bad = spec(owner="alice", resources={"cpu": "-1", "memory": "0"}, storage={"size": "-1Gi"})
    errors = validate_sandbox(bad, None, "h100", H100, ALICE)
    assert [e.split(":")[0] for e in errors] == [
        "spec.resources.cpu",
        "spec.resources.memory",
        "spec.storage.size",
    ]
    errors = validate_sandbox(bad, None, "h100", None, ALICE)
    assert sum("not a positive quantity" in e for e in errors) == 3
    assert any("does not exist" in e for e in errors)


def test_a_negative_quantity_on_update_is_refused_and_a_stored_one_stays_suspendable() -> None:
    old = spec(owner="alice", resources={"cpu": "4"})
    [error] = validate_sandbox(
        spec(owner="alice", resources={"cpu": "-4"}), old, "h100", H100, ALICE
    )
    assert error.startswith("spec.resources.cpu: -4 is not a positive quantity")
    stored = spec(owner="alice", resources={"cpu": "-4"})
    suspend = spec(owner="alice", resources={"cpu": "-4"}, suspend=True)
    assert validate_sandbox(suspend, stored, "h100", H100, ALICE) == []


def test_small_positive_quantities_pass() -> None:
    ok = spec(owner="alice", resources={"cpu": "500m", "memory": "1Mi"}, storage={"size": "1Gi"})
    assert validate_sandbox(ok, None, "h100", H100, ALICE) == []
