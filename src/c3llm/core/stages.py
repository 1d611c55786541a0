"""Launcher stages: name -> function(run_config, registry). Stages add themselves to
:data:`STAGE_FUNCTIONS`; the launcher runs them in the order given."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from c3llm.core.errors import ConfigError, did_you_mean
from c3llm.core.run_config import STAGES, RunConfig

log = logging.getLogger(__name__)

STAGE_FUNCTIONS: dict[str, Callable[[RunConfig, object], None]] = {}


def run_stages(config: RunConfig, stages: Sequence[str], *, registry) -> None:
    if not stages:
        raise ConfigError("no stages to run: set [run] stages = [...] or pass --stage NAME")
    for stage in stages:
        if stage not in STAGES:
            raise ConfigError(f"unknown stage {stage!r}.{did_you_mean(stage, STAGES)} Stages: {', '.join(STAGES)}")
    for stage in stages:
        if stage not in STAGE_FUNCTIONS:
            raise ConfigError(f"stage {stage!r} is not available in this build")
        log.info("stage %s", stage)
        STAGE_FUNCTIONS[stage](config, registry)
