"""Slither on the three deployed contracts; exit 1 on any high or medium finding.

How it compiles: plain ``slither contracts/X.sol`` calls ``solc`` with command-line flags that
the offline compiler (``.solcx/solc-v0.8.37``, the npm ``solc`` module behind
scripts/solc/solc-offline.js) does not answer. The wrapper answers ``--standard-json``, so this
script builds a standard-JSON input for ConsentRegistry, StudyRegistry and AccessLog with the
remappings, EVM version and optimizer of brownie-config.yaml, and hands it to crytic-compile's
``SolcStandardJson`` platform with ``solc`` pointing at the wrapper. The wrapper's import
callback reads ``interfaces/`` and OpenZeppelin 5.1 (``@openzeppelin`` remapped to
node_modules/@openzeppelin) from disk, and Slither analyses the resulting compilation with
every detector it ships.

Findings are counted only where one of their source elements lies in ``contracts/``:
OpenZeppelin is third-party code this project does not edit, so a finding entirely inside it
is not ours to fix, while any finding that touches our code (including a call into
OpenZeppelin) is kept. Findings accepted on purpose are listed in ``ACCEPTED`` below, each
with its reason; an entry that no longer matches a finding fails the check, so the list
cannot go stale.

Usage: ``python scripts/slither_check.py`` (``make slither``).
"""

from __future__ import annotations

import inspect
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from crytic_compile import CryticCompile
from crytic_compile.platform.solc_standard_json import SolcStandardJson
from slither import Slither
from slither.detectors import all_detectors
from slither.detectors.abstract_detector import AbstractDetector

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ("ConsentRegistry", "StudyRegistry", "AccessLog")
FAILING_IMPACTS = ("High", "Medium")
IMPACT_ORDER = ("High", "Medium", "Low", "Informational", "Optimization")

#: Findings accepted on purpose: (detector, "Contract.function", Slither's text of the
#: statement) -> why it is not an issue. Keep each reason next to its entry.
ACCEPTED: dict[tuple[str, str, str], str] = {
    (
        "unused-return",
        "ConsentRegistry._checkSignature",
        "(recovered,err,None) = ECDSA.tryRecover(digest,signature)",
    ): (
        "The third value of tryRecover is only the detail of a failed recovery (the bad length "
        "or s value) for error messages. The function checks the error code and the recovered "
        "address, and falls back to EIP-1271 on any failure."
    ),
    (
        "unused-return",
        "AccessLog._checkSignature",
        "(recovered,err,None) = ECDSA.tryRecover(digest,signature)",
    ): "Same as ConsentRegistry._checkSignature: the error code and the address are checked.",
    (
        "unused-return",
        "AccessLog.checkAccess",
        "(patient,contentRoot,None,None) = _studyRegistry.studyOf(site,studyKey)",
    ): (
        "A view that answers patient, content root and consent; the study's instance count "
        "and registration time are not part of its answer. studyOf reverts for an unknown "
        "study, so the values used are always a registered study's."
    ),
}


def _compiler_config() -> dict[str, Any]:
    """The ``compiler`` section of brownie-config.yaml."""
    config = yaml.safe_load((ROOT / "brownie-config.yaml").read_text(encoding="utf-8"))
    return dict(config["compiler"])


def _compiler_settings() -> tuple[list[str], dict[str, Any]]:
    """Remappings and solc settings from brownie-config.yaml, as brownie compiles."""
    compiler = _compiler_config()
    solc = compiler["solc"]
    settings: dict[str, Any] = {
        "evmVersion": compiler["evm_version"],
        "optimizer": solc["optimizer"],
        "viaIR": bool(solc.get("viaIR", False)),
    }
    return list(solc["remappings"]), settings


def standard_json_input() -> dict[str, Any]:
    """The solc standard-JSON input for the three contracts (imports come from the callback)."""
    remappings, settings = _compiler_settings()
    sources = {
        f"contracts/{name}.sol": {
            "content": (ROOT / "contracts" / f"{name}.sol").read_text(encoding="utf-8")
        }
        for name in CONTRACTS
    }
    return {
        "language": "Solidity",
        "sources": sources,
        "settings": {**settings, "remappings": remappings},
    }


def _detectors() -> list[type[AbstractDetector]]:
    return [
        d
        for d in vars(all_detectors).values()
        if inspect.isclass(d) and issubclass(d, AbstractDetector) and d is not AbstractDetector
    ]


def run_slither() -> list[dict[str, Any]]:
    """Compile through the offline solc and return every finding that touches contracts/."""
    solc = ROOT / ".solcx" / f"solc-v{_compiler_config()['solc']['version']}"
    # Compiler warnings are `make compile`'s to show; here they would only repeat OpenZeppelin's.
    compilation = CryticCompile(
        SolcStandardJson(standard_json_input()),
        solc=str(solc),
        solc_working_dir=str(ROOT),
        solc_disable_warnings=True,
    )
    ours = re.escape((ROOT / "contracts").as_posix().lstrip("/") + "/")
    slither = Slither(compilation, include_paths=[ours])
    for detector in _detectors():
        slither.register_detector(detector)
    return [finding for batch in slither.run_detectors() for finding in batch]


def acceptance_key(finding: dict[str, Any]) -> tuple[str, str, str]:
    """(detector, "Contract.function", statement) of a finding, for ``ACCEPTED``."""
    function, statement = "", ""
    for element in finding["elements"]:
        if element["type"] == "function" and not function:
            parent = element["type_specific_fields"]["parent"]["name"]
            function = f"{parent}.{element['name']}"
        elif element["type"] == "node" and not statement:
            statement = element["name"]
    return finding["check"], function, statement


def _first_line(finding: dict[str, Any]) -> str:
    return str(finding["description"]).strip().splitlines()[0]


def report(findings: list[dict[str, Any]]) -> int:
    """Print the findings by impact and return the exit code (1 on high/medium or stale entry)."""
    accepted = [f for f in findings if acceptance_key(f) in ACCEPTED]
    counted = [f for f in findings if acceptance_key(f) not in ACCEPTED]
    stale = set(ACCEPTED) - {acceptance_key(f) for f in accepted}
    for finding in sorted(counted, key=lambda f: IMPACT_ORDER.index(f["impact"])):
        print(f"[{finding['impact']}] {finding['check']}: {_first_line(finding)}")
    for finding in accepted:
        print(f"[accepted {finding['impact']}] {finding['check']}: {_first_line(finding)}")
    counts = Counter(f["impact"] for f in counted)
    print(
        "slither: "
        + ", ".join(f"{counts.get(impact, 0)} {impact.lower()}" for impact in IMPACT_ORDER)
        + f"; {len(accepted)} accepted (see ACCEPTED in {Path(__file__).name})"
    )
    for key in sorted(stale):
        print(f"slither: accepted entry matches no finding, remove it: {key}", file=sys.stderr)
    failing = sum(counts.get(impact, 0) for impact in FAILING_IMPACTS)
    if failing:
        print(f"slither: {failing} high/medium finding(s): fix them", file=sys.stderr)
    return 1 if failing or stale else 0


def main() -> int:
    started = time.monotonic()
    findings = run_slither()
    code = report(findings)
    print(f"slither: analysed {', '.join(CONTRACTS)} in {time.monotonic() - started:.1f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
