"""Documentation and packaging stay in step with the code."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

from c3llm.core import hookspecs
from c3llm.core.registry import BUILTIN_PLUGINS

ROOT = Path(__file__).resolve().parents[1]


def test_every_hook_is_documented():
    doc = (ROOT / "docs" / "plugin_hooks.md").read_text()
    documented = set(re.findall(r"^## (register_\w+)", doc, flags=re.M))
    hooks = {name for name in dir(hookspecs) if name.startswith("register_")}
    assert hooks == set(hookspecs.ROLE_HOOKS.values())
    assert hooks - documented == set(), f"undocumented hooks: {hooks - documented}"
    assert documented - hooks == set(), f"documented hooks that do not exist: {documented - hooks}"


def test_every_hookspec_has_a_docstring():
    for name in hookspecs.ROLE_HOOKS.values():
        assert (getattr(hookspecs, name).__doc__ or "").strip(), name


def test_entry_points_mirror_builtin_list():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["c3llm"] == BUILTIN_PLUGINS


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r"```(?:bash|sh)?\n# tests\n(.+?)\n", readme).group(1).strip()
    assert command in ci
