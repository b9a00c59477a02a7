"""scripts/slither_check.py fails on high and medium findings and on stale acceptances.

`make slither` runs the real analysis; these tests feed its verdict synthetic findings shaped
like Slither's JSON results, so the gate itself is proven without a compile.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _slither_check() -> ModuleType:
    # scripts/ is not a package on the client tests' path; load the script by file.
    path = ROOT / "scripts" / "slither_check.py"
    spec = importlib.util.spec_from_file_location("slither_check", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


slither_check = _slither_check()


def _finding(check: str, impact: str, function: str, statement: str) -> dict[str, Any]:
    contract, name = function.split(".")
    return {
        "check": check,
        "impact": impact,
        "description": f"{function}() (contracts/{contract}.sol#1-2) {check}\n",
        "elements": [
            {
                "type": "function",
                "name": name,
                "type_specific_fields": {"parent": {"name": contract}},
            },
            {"type": "node", "name": statement},
        ],
    }


def _accepted_findings() -> list[dict[str, Any]]:
    return [_finding(check, "Medium", f, s) for check, f, s in slither_check.ACCEPTED]


def test_accepted_findings_and_lows_pass(capsys):
    low = _finding("timestamp", "Low", "ConsentRegistry._inForce", "")
    assert slither_check.report([*_accepted_findings(), low]) == 0
    assert "0 high, 0 medium, 1 low" in capsys.readouterr().out


def test_a_medium_finding_fails(capsys):
    planted = _finding("tx-origin", "Medium", "StudyRegistry.planted", "tx.origin == _owner")
    assert slither_check.report([*_accepted_findings(), planted]) == 1
    assert "1 high/medium finding(s)" in capsys.readouterr().err


def test_a_high_finding_fails():
    planted = _finding("arbitrary-send-eth", "High", "AccessLog.planted", "to.transfer(1)")
    assert slither_check.report([*_accepted_findings(), planted]) == 1


def test_an_accepted_finding_in_another_statement_still_counts():
    check, function, _ = next(iter(slither_check.ACCEPTED))
    elsewhere = _finding(check, "Medium", function, "(a,None) = other.call()")
    assert slither_check.report([*_accepted_findings(), elsewhere]) == 1


def test_a_stale_acceptance_fails(capsys):
    assert slither_check.report(_accepted_findings()[1:]) == 1
    assert "matches no finding" in capsys.readouterr().err
