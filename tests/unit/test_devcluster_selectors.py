from __future__ import annotations

import pytest

from sandboxer.devcluster.errors import ApiError
from sandboxer.devcluster.selectors import match_label_selector, matcher

OBJ = {"metadata": {"name": "a", "namespace": "ns", "labels": {"tier": "web", "env": "prod"}}}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", True),
        ("tier==web", True),
        ("tier!=web", False),
        ("tier in (web, db)", True),
        ("tier notin (web)", False),
        ("tier", True),
        ("!tier", False),
        ("missing!=x", True),
        ("tier=web,env=dev", False),
        ("tier in (web),env", True),
    ],
)
def test_label_selectors(selector: str, expected: bool) -> None:
    check = matcher(selector, None)
    assert check is not None
    assert check(OBJ) is expected


def test_field_selectors() -> None:
    check = matcher(None, "metadata.name=a,metadata.namespace!=other")
    assert check is not None
    assert check(OBJ)
    check = matcher(None, "metadata.namespace=other")
    assert check is not None
    assert not check(OBJ)


def test_no_selector_means_no_filter() -> None:
    assert matcher("", None) is None


def test_bad_selector_is_a_400() -> None:
    with pytest.raises(ApiError) as err:
        matcher("tier in web", None)
    assert err.value.code == 400


def test_label_selector_objects() -> None:
    labels = {"tier": "web"}
    assert match_label_selector({"matchLabels": {"tier": "web"}}, labels)
    expr = {"key": "tier", "operator": "NotIn", "values": ["web"]}
    assert not match_label_selector({"matchExpressions": [expr]}, labels)
    assert match_label_selector(None, labels)
