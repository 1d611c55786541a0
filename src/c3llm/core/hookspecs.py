"""Hook specifications: one ``register_*`` hook per role.

A plugin is a module (or object) with functions marked ``@hookimpl`` whose names match the
hooks below. Each hook receives a ``register`` callback owned by the host, so the host can
validate names, refuse duplicates and remember which plugin provided what::

    from c3llm.core.hookspecs import hookimpl

    @hookimpl
    def register_backbones(register):
        register("my-llm", MyBackbone, MyBackboneConfig, description="...")

The callback signature is ``register(name, component_cls, config_cls, *, description="")``.
``component_cls`` must satisfy the role's contract (:mod:`c3llm.core.roles`); ``config_cls`` is
a frozen attrs class whose instance is the component's only constructor argument.
Hooks are called once, the first time the registry is needed; they must do no I/O and import
no heavy library at module level.
"""

from __future__ import annotations

import pluggy

PROJECT = "c3llm"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_decoders(register):
    """Register audio codecs (role ``decoder``).

    A codec turns waveforms into discrete codes for training (``encode``) and codes back
    into waveforms (``decode``). Contract: :class:`c3llm.core.roles.Decoder`.

    :param register: ``register(name, component_cls, config_cls, *, description="")``.
    :return: nothing; call ``register`` once per codec.
    """


@hookspec
def register_encoders(register):
    """Register condition encoders (role ``encoder``): audio (CLAP) or video (RGB + flow).

    An encoder turns raw media into continuous features ``(B, N, D)`` with a mask ``(B, N)``.
    Contract: :class:`c3llm.core.roles.Encoder`.

    :param register: ``register(name, component_cls, config_cls, *, description="")``.
    :return: nothing; call ``register`` once per encoder.
    """


@hookspec
def register_backbones(register):
    """Register LLM backbones (role ``backbone``).

    A backbone owns the tokenizer and the decoder-only LM, extended with the acoustic
    vocabulary and the modality markers. Contract: :class:`c3llm.core.roles.Backbone`.

    :param register: ``register(name, component_cls, config_cls, *, description="")``.
    :return: nothing; call ``register`` once per backbone.
    """


@hookspec
def register_refiners(register):
    """Register refiners (role ``refiner``) that add codebooks 2..Q to coarse codes.

    Contract: :class:`c3llm.core.roles.Refiner`.

    :param register: ``register(name, component_cls, config_cls, *, description="")``.
    :return: nothing; call ``register`` once per refiner.
    """


@hookspec
def register_datasets(register):
    """Register dataset readers (role ``dataset``) that yield samples from a manifest.

    Contract: :class:`c3llm.core.roles.Dataset`.

    :param register: ``register(name, component_cls, config_cls, *, description="")``.
    :return: nothing; call ``register`` once per dataset.
    """


@hookspec
def register_metrics(register):
    """Register evaluation metrics (role ``metric``).

    Contract: :class:`c3llm.core.roles.Metric`.

    :param register: ``register(name, component_cls, config_cls, *, description="")``.
    :return: nothing; call ``register`` once per metric.
    """


#: role name -> hook name; the single table the registry is driven by.
ROLE_HOOKS: dict[str, str] = {
    "decoder": "register_decoders",
    "encoder": "register_encoders",
    "backbone": "register_backbones",
    "refiner": "register_refiners",
    "dataset": "register_datasets",
    "metric": "register_metrics",
}
