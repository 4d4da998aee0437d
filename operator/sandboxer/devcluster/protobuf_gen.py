"""Refresh `k8sproto/` from checkouts of k8s.io/api, apimachinery and apiextensions-apiserver.

`make k8s-proto K8S_SRC=DIR` (DIR holds `api/`, `apimachinery/`, `apiextensions-apiserver/` at
kubectl's version) copies upstream's generated.proto files, compiles them with grpcio-tools into
`descriptors.binpb` and extracts `omitempty.json` from the Go struct tags: per message, the
non-pointer fields Go's JSON encoder may leave out when zero (`omitempty`, `omitzero`) and the
embedded structs it flattens (`inline`). The wire cannot say whether a
zero came from such a field (Go's protobuf marshaller writes them always) or from a pointer set to
zero, so the decoder needs that one fact from the Go types.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

HERE = Path(__file__).with_name("k8sproto")
API_GROUPS = (
    "core", "apps", "events", "coordination", "networking", "policy", "scheduling", "rbac",
    "admissionregistration",
)  # fmt: skip
# (folder under K8S_SRC, protobuf package); k8sproto/k8s.io/<folder> keeps the import paths
MACHINERY = (
    ("apimachinery/pkg/api/resource", "k8s.io.apimachinery.pkg.api.resource"),
    ("apimachinery/pkg/apis/meta/v1", "k8s.io.apimachinery.pkg.apis.meta.v1"),
    ("apimachinery/pkg/runtime", "k8s.io.apimachinery.pkg.runtime"),
    ("apimachinery/pkg/runtime/schema", "k8s.io.apimachinery.pkg.runtime.schema"),
    ("apimachinery/pkg/util/intstr", "k8s.io.apimachinery.pkg.util.intstr"),
    (
        "apiextensions-apiserver/pkg/apis/apiextensions/v1",
        "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1",
    ),
)
SOURCES = tuple((f"api/{g}/v1", f"k8s.io.api.{g}.v1") for g in API_GROUPS) + MACHINERY

_STRUCT = re.compile(r"^type (\w+) struct \{$")
_FIELD = re.compile(r"^\s+\w+\s+(\S+)\s+`([^`]*)`")
_EMBEDDED = re.compile(r"^\s+([\w.]+)\s+`([^`]*)`")
_TAG = re.compile(r'(\w+):"([^"]*)"')


def _proto_name(protobuf_tag: str) -> str:
    return next((p[5:] for p in protobuf_tag.split(",") if p.startswith("name=")), "")


def zero_omitted(go_source: str) -> dict[str, dict[str, str]]:
    """Struct name -> {proto field name: inline|omitzero|omitempty} for its non-pointer fields."""
    out: dict[str, dict[str, str]] = {}
    struct = ""
    for line in go_source.splitlines():
        if m := _STRUCT.match(line):
            struct = m.group(1)
            continue
        if line.startswith("}"):
            struct = ""
        if not struct:
            continue
        if m := _EMBEDDED.match(line):
            tags = dict(_TAG.findall(m.group(2)))
            if tags.get("json") == ",inline" and "protobuf" in tags:
                # Go's JSON flattens an embedded struct; protobuf nests it as one field.
                go_name = m.group(1).rpartition(".")[2]
                name = _proto_name(tags["protobuf"]) or go_name[0].lower() + go_name[1:]
                out.setdefault(struct, {})[name] = "inline"
            continue
        if not (m := _FIELD.match(line)):
            continue
        go_type, tags = m.group(1), dict(_TAG.findall(m.group(2)))
        if go_type.startswith(("*", "[]", "map[")) or "protobuf" not in tags:
            continue
        options = tags.get("json", "").split(",")[1:]
        name = _proto_name(tags["protobuf"])
        # omitempty leaves out zero scalars (the decoder knows which fields are scalars from the
        # descriptors); omitzero any zero value, metav1.Time included.
        for option in ("omitzero", "omitempty"):
            if name and option in options:
                out.setdefault(struct, {})[name] = option
                break
    return out


def main(argv: list[str]) -> int:
    src = Path(argv[0])
    protos: list[str] = []
    omitted: dict[str, dict[str, str]] = {}
    for directory, package in SOURCES:
        rel = Path("k8s.io") / directory  # the import paths the .proto files use
        (HERE / rel).mkdir(parents=True, exist_ok=True)
        shutil.copy(src / directory / "generated.proto", HERE / rel / "generated.proto")
        protos.append(str(rel / "generated.proto"))
        for go in sorted((src / directory).glob("*.go")):
            if go.name.endswith("_test.go"):
                continue
            for struct, fields in zero_omitted(go.read_text()).items():
                omitted.setdefault(f"{package}.{struct}", {}).update(fields)
    (HERE / "omitempty.json").write_text(json.dumps(omitted, indent=1, sort_keys=True) + "\n")
    return compile_descriptors(HERE, HERE / "descriptors.binpb", protos)


def compile_descriptors(root: Path, out: Path, protos: list[str]) -> int:
    args = ["protoc", f"-I{root}", "--include_imports", f"--descriptor_set_out={out}"]
    return int(protoc.main([*args, *sorted(protos)]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
