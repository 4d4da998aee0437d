"""The FinOps Foundation's FOCUS validator (PyPI `focus-validator` 2.2.1) in its own venv.

Standard library only: the Makefile runs `--patch` with the validator venv's own Python, the
conformance tests import `run_validator`, and `make focus-validate EXPORT=DIR` runs `--validate`.

2.2.1 declares Python >= 3.12. On 3.11 exactly one line keeps it from importing: an f-string
with a backslash in its expression (PEP 701 syntax, 3.12+) in the converter that builds
`ignore_keys_sql`. `--patch` rewrites that line as plain concatenation (same string, same
semantics), idempotently, and then proves the whole package compiles on this interpreter.
It also opens its rule data by relative paths (`focus_validator/rules/currency_codes.csv`), so
it is always run from its `site-packages` folder.
"""

from __future__ import annotations

import argparse
import compileall
import gzip
import json
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-focus-validator"
VERSION = "2.2.1"
FOCUS_VERSION = "1.2"
TARGET = Path("focus_validator/config_objects/focus_to_duckdb_converter.py")
ORIGINAL = """+ ", ".join(f"'{k.replace('\\"', '\\"\\"')}'" for k in ignore_keys)"""
PATCHED = """+ ", ".join("'" + k.replace('"', '""') + "'" for k in ignore_keys)"""
SUMMARY = re.compile(r"Total: (\d+) \| Pass: (\d+) \| Fail: (\d+) \| Skipped: (\d+)")
STATUS = re.compile(r"^\S+ (\S+): (PASS|FAIL|SKIPPED)\b", re.MULTILINE)
RULES = Path("focus_validator/rules/model-1.2.0.1.json")


def patch(site: Path) -> str:
    """Apply the 3.11 patch in `site` (once); fail unless the result compiles here."""
    installed = metadata.version("focus-validator")
    if installed != VERSION:
        raise SystemExit(f"focus-validator {installed} is installed; this patch is for {VERSION}")
    path = site / TARGET
    text = path.read_text(encoding="utf-8")
    if text.count(ORIGINAL) == 1 and PATCHED not in text:
        path.write_text(text.replace(ORIGINAL, PATCHED), encoding="utf-8")
        outcome = f"Patched {TARGET} for Python {sys.version_info.major}.{sys.version_info.minor}"
    elif text.count(PATCHED) == 1 and ORIGINAL not in text:
        outcome = f"{TARGET} was already patched"
    else:
        raise SystemExit(f"{path} does not hold the expected 2.2.1 line; re-check the patch")
    package = site / "focus_validator"
    if not compileall.compile_dir(str(package), quiet=1, force=True):
        raise SystemExit(f"{package} still does not compile on Python {sys.version.split()[0]}")
    return outcome


def site_packages(venv: Path = VENV) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise FileNotFoundError(
            f"{venv} has no site-packages: run `make {venv.name}/.installed-stamp`"
        )
    return found[0]


@dataclass(frozen=True, slots=True)
class ValidatorRun:
    data_file: Path
    total: int
    passed: int
    failed: int
    skipped: int
    statuses: dict[str, str]  # rule id -> PASS | FAIL | SKIPPED
    output: str

    @property
    def failed_rules(self) -> list[str]:
        return sorted(rule for rule, status in self.statuses.items() if status == "FAIL")

    def unmet_alternatives(self, venv: Path = VENV) -> list[str]:
        """Failed rules that are only one branch of an OR rule which passed.

        2.2.1 counts every branch of a passing OR as its own result. Where the branches exclude
        each other (InvoiceId-C-004-C "MUST be null" / -005-C "MUST NOT be null", with no
        condition to tell which applies), one of them fails on any data at all.
        """
        rules = json.loads((site_packages(venv) / RULES).read_text(encoding="utf-8"))
        parents: dict[str, list[str]] = {}
        for rule_id, rule in rules["ModelRules"].items():
            requirement = rule.get("ValidationCriteria", {}).get("Requirement", {})
            if requirement.get("CheckFunction") == "OR":
                for item in requirement.get("Items", []):
                    if item.get("CheckFunction") == "CheckModelRule":
                        parents.setdefault(item["ModelRuleId"], []).append(rule_id)
        return [
            rule
            for rule in self.failed_rules
            if any(self.statuses.get(parent) == "PASS" for parent in parents.get(rule, []))
        ]

    @property
    def summary(self) -> str:
        return (
            f"Total: {self.total} | Pass: {self.passed} | Fail: {self.failed} | "
            f"Skipped: {self.skipped}"
        )

    def report(self) -> str:
        """The validator's summary and its failures section, for an assertion message."""
        failures = self.output.partition("--- Failures ---")[2].strip()
        return f"{self.data_file}: {self.summary}\n{failures}"


def run_validator(data_file: Path, venv: Path = VENV) -> ValidatorRun:
    """Validate one export file (Parquet, or gzip CSV) against FOCUS 1.2, offline."""
    with tempfile.TemporaryDirectory(prefix="focus-validator-") as tmp:
        if data_file.name.endswith(".csv.gz"):  # it reads plain .csv only
            plain = Path(tmp) / data_file.name.removesuffix(".gz")
            with gzip.open(data_file) as source, plain.open("wb") as target:
                shutil.copyfileobj(source, target)
            target_file, data_format = plain, "csv"
        else:
            target_file, data_format = data_file.resolve(), "parquet"
        command = [
            str(venv / "bin" / "focus-validator"), "--data-file", str(target_file),
            "--validate-version", FOCUS_VERSION, "--block-download", "--data-format", data_format,
        ]  # fmt: skip
        proc = subprocess.run(
            command, cwd=site_packages(venv), capture_output=True, text=True, timeout=600,
            check=False,
        )  # fmt: skip
    output = proc.stdout + proc.stderr
    found = SUMMARY.search(output)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"focus-validator exited {proc.returncode}:\n{output[-4000:]}")
    total, passed, failed, skipped = (int(g) for g in found.groups())
    statuses = dict(STATUS.findall(output))
    return ValidatorRun(data_file, total, passed, failed, skipped, statuses, output)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patch", action="store_true", help="patch the running venv for 3.11")
    parser.add_argument(
        "--validate", nargs="*", type=Path, default=[], metavar="EXPORT",
        help="export folders (or files): validate every data/**/*.parquet and *.csv.gz",
    )  # fmt: skip
    args = parser.parse_args()
    if args.patch:
        print(patch(Path(sysconfig.get_paths()["purelib"])))
    failed = 0
    for target in args.validate:
        files = [target] if target.is_file() else sorted(target.glob("**/part-*.parquet"))
        if not target.is_file():
            files += sorted(target.glob("**/part-*.csv.gz"))
        if not files:
            print(f"{target}: no part-*.parquet or part-*.csv.gz files", file=sys.stderr)
            return 2
        for file in files:
            run = run_validator(file)
            print(run.report() if run.failed else f"{file}: {run.summary}")
            alternatives = run.unmet_alternatives()
            if alternatives:
                print(f"  unmet branches of a passing OR rule: {', '.join(alternatives)}")
            failed += run.failed - len(alternatives)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
