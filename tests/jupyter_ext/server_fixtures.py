"""Fixtures of the tests that talk to the nbscale server extension in a real jupyter_server.

A test module takes them, with pytest-jupyter's jp_* fixtures, by `from server_fixtures import *`
(so pytest-jupyter's autouse fixtures stay in the modules that want a server).
"""

from __future__ import annotations

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403 - re-exported: the jp_* fixtures


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"nbscale.jupyter_ext": True}},
            "Nbscale": {"default_engine": "local"}}


@pytest.fixture
def aio(jp_asyncio_loop):
    """Run a coroutine on the server's loop, to its end."""
    return jp_asyncio_loop.run_until_complete


@pytest.fixture
def manager(jp_serverapp, aio):
    """The extension's manager; closed (its runs and cluster ended) after the test."""
    manager = jp_serverapp.web_app.settings["nbscale_manager"]
    yield manager
    aio(manager.close())
