"""The plugin host: registration rules, duplicates, unknown names, import failures, blocking."""

from __future__ import annotations

import textwrap
import types

import attrs
import pluggy
import pytest

from c3llm.core import hookspecs
from c3llm.core.errors import (
    ConfigError,
    DuplicateComponentError,
    PluginError,
    PluginImportError,
    UnknownComponentError,
)
from c3llm.core.hookspecs import hookimpl
from c3llm.core.registry import (
    BUILTIN_PLUGINS,
    Registry,
    get_plugin_manager,
    get_registry,
)
from c3llm.core.roles import Metric


@attrs.frozen(kw_only=True)
class CountConfig:
    scale: float = 1.0


class CountMetric(Metric):
    """Counts predictions (a real, trivial metric for registry tests)."""

    task = "caption"

    def __init__(self, config: CountConfig):
        self.config = config

    def compute(self, predictions, references):
        return {"count": self.config.scale * len(predictions)}


def plugin(**hooks) -> types.SimpleNamespace:
    return types.SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})


def registry_with(*plugins: tuple[str, object]) -> Registry:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    origins = {}
    for name, obj in plugins:
        manager.register(obj, name=name)
        origins[name] = (f"dist-{name}", "1.2.3")
    return Registry(manager, origins)


def test_register_build_and_provenance():
    reg = registry_with(("counter", plugin(register_metrics=lambda register: register(
        "count", CountMetric, CountConfig, description="counts")))) 
    spec = reg.get("metric", "count")
    assert (spec.plugin, spec.distribution, spec.version) == ("counter", "dist-counter", "1.2.3")
    assert spec.provider == "counter (dist-counter 1.2.3)"
    metric = reg.build("metric", {"name": "count", "scale": 2})
    assert metric.compute(["a", "b"], [["a"], ["b"]]) == {"count": 4.0}
    assert metric.registry_spec is spec


def test_duplicate_names_both_providers():
    def reg_a(register):
        register("count", CountMetric, CountConfig)

    def reg_b(register):
        register("count", CountMetric, CountConfig)

    with pytest.raises(DuplicateComponentError, match=r"by a \(dist-a 1.2.3\) and by b \(dist-b 1.2.3\)"):
        registry_with(("a", plugin(register_metrics=reg_a)), ("b", plugin(register_metrics=reg_b)))


def test_unknown_component_lists_available_and_suggests():
    reg = registry_with(("c", plugin(register_metrics=lambda register: register("count", CountMetric, CountConfig))))
    with pytest.raises(UnknownComponentError, match=r"unknown metric 'cont'. Did you mean 'count'\? Available: count"):
        reg.get("metric", "cont")
    with pytest.raises(UnknownComponentError, match=r"unknown role 'metrics'. Did you mean 'metric'"):
        reg.get("metrics", "count")


def test_unknown_config_key_via_registry():
    reg = registry_with(("c", plugin(register_metrics=lambda register: register("count", CountMetric, CountConfig))))
    with pytest.raises(ConfigError, match=r"unknown key 'metric.scal'. Did you mean 'scale'"):
        reg.build("metric", {"name": "count", "scal": 1}, where="metric")
    with pytest.raises(ConfigError, match="needs name"):
        reg.build("metric", {"scale": 1})


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (("Bad Name", CountMetric, CountConfig), "use lowercase"),
        (("ok", object, CountConfig), "does not subclass"),
        (("ok", CountMetric, dict), "not an attrs class"),
    ],
)
def test_invalid_registrations_name_the_plugin(args, pattern):
    with pytest.raises(PluginError, match=rf"plugin 'p'.*{pattern}"):
        registry_with(("p", plugin(register_metrics=lambda register: register(*args))))


def test_plugin_bug_during_registration_is_reported_and_the_plugin_skipped(caplog):
    def broken(register):
        register("half", CountMetric, CountConfig)
        raise RuntimeError("boom")

    reg = registry_with(("p", plugin(register_metrics=broken)), ("ok", plugin(
        register_metrics=lambda register: register("count", CountMetric, CountConfig))))
    assert reg.names("metric") == ["count"]  # p's half-registered component is gone too
    assert "plugin p from dist-p 1.2.3 failed in register_metrics: RuntimeError: boom" in reg.broken["p"]
    assert "-p no:p" in caplog.text
    with pytest.raises(UnknownComponentError, match=r"Plugin 'p' failed to load and may provide it"):
        reg.get("metric", "half")


@pytest.fixture
def fake_distribution(tmp_path, monkeypatch):
    """Install (on sys.path) a distribution whose c3llm plugin fails to import."""
    (tmp_path / "broken_plugin.py").write_text("import not_a_real_module_xyz\n")
    info = tmp_path / "broken_dist-9.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-dist\nVersion: 9.9\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""
        [c3llm]
        broken = broken_plugin
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "broken"


def test_failing_plugin_import_names_plugin_and_distribution(fake_distribution):
    with pytest.raises(PluginImportError, match=r"plugin 'broken' \(broken_plugin\) from distribution broken-dist 9.9 failed to import: ModuleNotFoundError.*-p no:broken"):
        get_plugin_manager()


def test_blocking_by_name_and_env(fake_distribution, monkeypatch):
    manager, origins = get_plugin_manager(disabled=["broken"])
    assert "broken" not in origins
    monkeypatch.setenv("C3LLM_DISABLE_PLUGINS", "broken, nar")
    manager, origins = get_plugin_manager()
    assert "broken" not in origins and "nar" not in origins


def test_builtins_load_and_each_role_has_one():
    reg = get_registry()
    for role in hookspecs.ROLE_HOOKS:
        assert reg.names(role), f"no built-in {role}"
    assert set(BUILTIN_PLUGINS) <= {name for name, _ in reg.manager.list_name_plugin()}
