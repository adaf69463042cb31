"""environment.yml (conda/Colab) and pyproject.toml (pip, make) describe one environment."""

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _requirements(lines):
    reqs = {}
    for line in lines:
        if line.startswith("-e"):
            continue
        name = re.match(r"[A-Za-z0-9_.\-]+", line).group(0).lower()
        reqs[name] = line[len(name):].replace(" ", "")
    return reqs


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _requirements(project["dependencies"] + project["optional-dependencies"]["dev"]
                             + project["optional-dependencies"]["test"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _requirements(pip_section) == declared


def test_constraints_pin_torch_and_admit_declared_ranges():
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {Requirement(r).name.lower(): Requirement(r) for r in
                project["dependencies"] + project["optional-dependencies"]["dev"]
                + project["optional-dependencies"]["test"]}
    pins = [Requirement(line) for line in (ROOT / "constraints.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    pinned = {p.name.lower(): next(iter(p.specifier)).version for p in pins}
    assert pinned["torch"] == "2.13.0"
    for name, version in pinned.items():
        if name in declared:
            assert declared[name].specifier.contains(version), f"{name}=={version} outside {declared[name]}"
