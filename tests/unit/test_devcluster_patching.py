from __future__ import annotations

import pytest

from sandboxer.devcluster.patching import (
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)


def test_merge_patch_null_deletes_and_does_not_mutate() -> None:
    target = {"a": {"b": 1, "c": 2}, "d": [1, 2]}
    out = merge_patch(target, {"a": {"b": None, "e": 3}, "d": [3]})
    assert out == {"a": {"c": 2, "e": 3}, "d": [3]}
    assert target == {"a": {"b": 1, "c": 2}, "d": [1, 2]}


def test_json_patch_ops() -> None:
    doc = {"a": [1, 2], "b": {"c": 1}}
    out = json_patch(
        doc,
        [
            {"op": "add", "path": "/a/-", "value": 3},
            {"op": "replace", "path": "/b/c", "value": 2},
            {"op": "copy", "from": "/b", "path": "/e"},
            {"op": "move", "from": "/e/c", "path": "/f"},
            {"op": "remove", "path": "/a/0"},
            {"op": "test", "path": "/f", "value": 2},
        ],
    )
    assert out == {"a": [2, 3], "b": {"c": 2}, "e": {}, "f": 2}
    assert doc == {"a": [1, 2], "b": {"c": 1}}


def test_json_patch_failed_test_is_marked() -> None:
    with pytest.raises(PatchError) as err:
        json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])
    assert err.value.test_failed


def test_json_patch_bad_path() -> None:
    with pytest.raises(PatchError):
        json_patch({"a": 1}, [{"op": "remove", "path": "/b"}])


def test_strategic_merge_by_key_and_directives() -> None:
    target = {
        "spec": {
            "containers": [
                {"name": "a", "image": "1", "env": [{"name": "X", "value": "1"}]},
                {"name": "b", "image": "2"},
            ],
            "finalizers": ["x", "y"],
        }
    }
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [
                {"name": "a", "env": [{"name": "Y", "value": "2"}]},
                {"name": "b", "$patch": "delete"},
                {"name": "c", "image": "3"},
            ],
            "$deleteFromPrimitiveList/finalizers": ["x"],
        }
    }
    out = strategic_merge_patch(target, patch)
    containers = out["spec"]["containers"]
    assert [c["name"] for c in containers] == ["a", "c"]
    assert containers[0]["env"] == [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]
    assert out["spec"]["finalizers"] == ["y"]
    assert "$setElementOrder/containers" not in out["spec"]
