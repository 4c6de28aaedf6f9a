"""The sandbox's reset waits for requests still being answered, so a request that outlived its
client's timeout (a ``slow`` fault) lands in the test that sent it, never in the next one."""

from __future__ import annotations

import pytest
import requests

from tests.unit.platforms.hook_helpers import requests_seen


def test_reset_waits_for_a_slow_request_then_starts_clean(sandbox):
    account = sandbox.add_account("x", "koho_city")
    sandbox.fault("x", "slow", operation="verify", delay=1.0)
    with pytest.raises(requests.Timeout):  # the client gives up; the sandbox is still answering
        requests.get(
            f"{sandbox.url}/x/2/users/me", timeout=0.2, headers={"Authorization": f"Bearer {account['token']}"}
        )
    assert requests_seen(sandbox, "x") == 0  # counted when answered, and it is not yet

    result = sandbox.admin("POST", "/reset")

    assert result["requests_still_running"] is False
    assert sandbox.state.wait_idle(5)
    assert requests_seen(sandbox, "x") == 0  # the late answer came before the reset, not into the fresh state
