"""maxLifetime counts from the current run's first Ready (issue 16 point 6).

Through the real kubectl as alice: her notebook's container is broken and mended again (the pod
rolls, Ready flaps), which keeps `startedAt`; the lifetime reclaim comes on the first run's
schedule. The resume after it starts a new run with a new `startedAt`.
"""

from __future__ import annotations

import json

import pytest

from sandboxer.devcluster.playground import Playground
from tests.integration.conftest import Kubectl
from tests.integration.manifests import sandbox_class
from tests.integration.test_playground_idle_budget import at, events, get, wait

pytestmark = pytest.mark.slow  # a whole playground run

LIFETIME = 25  # seconds: room for the pod to roll twice inside it

SHORT_LIVED = sandbox_class("short", maxLifetime=f"{LIFETIME}s", idle={"after": "1h"})
NOTEBOOK = json.dumps(
    {
        "apiVersion": "sandboxer.io/v1alpha1",
        "kind": "ExperimentSandbox",
        "metadata": {"name": "run", "annotations": {"sim.sandboxer.io/gpu-utilization": "90"}},
        "spec": {"class": "short", "gpus": 1},
    }
)
START = "sim.sandboxer.io/container-start"


async def test_a_readiness_flap_keeps_the_lifetime_and_a_resume_starts_a_new_run(
    playground: Playground, pg_kubectl: Kubectl
) -> None:
    kubectl = pg_kubectl
    await kubectl("apply", "-f", "-", input=SHORT_LIVED)
    await kubectl("apply", "-f", "-", input=NOTEBOOK, user="alice")
    await wait(kubectl, "--for=condition=Ready", "esb/run")
    started = (await get(kubectl, "esb", "run"))["status"]["startedAt"]

    # The container breaks (the pod rolls into CrashLoopBackOff) and is mended again.
    await kubectl("annotate", "esb/run", f"{START}=CrashLoopBackOff", user="alice")
    await wait(kubectl, "--for=condition=Ready=false", "esb/run")
    await kubectl("annotate", "esb/run", f"{START}=Running", "--overwrite", user="alice")
    await wait(kubectl, "--for=condition=Ready", "esb/run")
    assert (await get(kubectl, "esb", "run"))["status"]["startedAt"] == started

    await wait(kubectl, "--for=jsonpath={.status.suspendedReason}=Lifetime", "esb/run", within=60)
    [exceeded] = [e for e in await events(kubectl, "run") if e["reason"] == "LifetimeExceeded"]
    late = (at(exceeded["lastTimestamp"]) - at(started)).total_seconds()
    assert LIFETIME - 1 <= late <= LIFETIME + 5, late  # on the first run's schedule

    await kubectl(
        "patch", "esb", "run", "--type", "merge", "-p", '{"spec":{"suspend":false}}', user="alice"
    )
    await wait(kubectl, "--for=condition=Ready", "esb/run")
    again = (await get(kubectl, "esb", "run"))["status"]["startedAt"]
    # A new run, a new lifetime (whole seconds: the resume may land in the reclaim's second).
    assert at(again) >= at(exceeded["lastTimestamp"]) > at(started)
