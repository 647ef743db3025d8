"""What the demo changes in the settings it was given: its own state folder, a short StableAge, and
every write-back object, the key image included (the one object that shows the RANO lines in OHIF
for every study, see ``demo_settings``)."""

from __future__ import annotations

import dataclasses

from engine.settings import Settings
from flows.cmd_demo import demo_settings


def test_the_demo_writes_every_object_back_in_its_own_state_folder() -> None:
    given = Settings()
    given = dataclasses.replace(given, writeback=dataclasses.replace(given.writeback, key_image=False))
    demo = demo_settings(given, port=8599, webhook_url="http://127.0.0.1:9/alerts")
    assert demo.writeback.enabled and demo.writeback.key_image
    assert demo.writeback.labelmap == given.writeback.labelmap
    assert demo.state_dir == given.state_dir / "demo"
    assert demo.alerts.sinks == ("dashboard", "webhook")
    assert demo.alerts.dashboard_base_url == "http://127.0.0.1:8599"
    assert given.writeback.key_image is False  # the settings given are not changed
