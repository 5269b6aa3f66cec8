"""The Windows/macOS workflow parses and does what issue 14 asks (it can only run on GitHub)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "build.yml"


def _workflow() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


def test_workflow_builds_on_windows_and_macos() -> None:
    data = _workflow()
    # YAML 1.1 reads the key `on` as True.
    assert data.get("on", data.get(True)) is not None
    job = data["jobs"]["bundle"]
    assert sorted(job["strategy"]["matrix"]["os"]) == ["macos-latest", "windows-latest"]
    assert job["env"]["QT_QPA_PLATFORM"] == "offscreen"
    runs = _runs(job)
    assert "PyInstaller" in runs and "build.spec" in runs
    assert "dist/tdgui/tdgui-cli.exe --self-test" in runs  # the console exe on Windows
    assert "dist/tdgui/tdgui --self-test" in runs
    assert "tests/core/stores/test_store_contract.py" in runs
    uses = [str(step.get("uses", "")) for step in job["steps"]]
    uploads = [step for step, use in zip(job["steps"], uses) if use.startswith("actions/upload-artifact@")]
    assert uploads and uploads[0]["with"]["if-no-files-found"] == "error"


def test_readme_says_the_workflow_is_untested() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert ".github/workflows/build.yml" in readme
    assert "untested until it runs" in readme
