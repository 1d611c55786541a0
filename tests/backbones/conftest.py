"""The ``plugin`` fixture: every backbone test body runs over both plugins."""

import pytest
from backbone_helpers import PLUGINS


@pytest.fixture(params=sorted(PLUGINS))
def plugin(request) -> str:
    return request.param
