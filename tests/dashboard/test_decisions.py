"""Issue 32: a board decision is about one scan, has no default (no CONTINUE_SURVEILLANCE after a PD
unless the board chooses it), and the same decision on the same scan a second time is held back
with a warning unless the board ticks "record it again"."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from dashboard.board_queue import waiting_actions
from engine.store import open_store, publish_snapshot
from engine.usecases.apply_board_request import apply_board_requests
from engine.store.board_requests import RequestKind, requests_dir
from tests.dashboard.conftest import APP_PATH, log_in, open_page
from tests.dashboard.store_factory import Built

SUBMIT = "FormSubmitter:decision_form-Record decision"


def _actions() -> AppTest:
    at = AppTest.from_file(str(APP_PATH), default_timeout=60)
    at.run()
    return open_page(log_in(at), "Actions", "P-ALERT")


def _writer(built: Built) -> None:
    with open_store(built.settings.db_path) as store:
        assert not apply_board_requests(store, requests_dir(built.settings.state_dir)).failed
        publish_snapshot(store, built.settings.snapshot_path)


def test_a_decision_needs_a_choice_and_names_its_scan(built_state: Built) -> None:
    at = _actions()
    assert at.selectbox(key="dec_choice").value is None  # no default decision
    assert at.selectbox(key="dec_scan").value == "2025-03-20"  # the latest scan, with its call
    at.text_area(key="dec_note").input("discuss perfusion")
    at.button(key=SUBMIT).click().run()
    assert any("needs a choice and a note" in e.value for e in at.error)
    assert not waiting_actions(built_state.settings, "P-ALERT")
    at.selectbox(key="dec_choice").set_value("ADVANCED_IMAGING")
    at.text_area(key="dec_note").input("discuss perfusion")
    at.button(key=SUBMIT).click().run()
    (request,) = waiting_actions(built_state.settings, "P-ALERT")
    assert request.kind is RequestKind.RECORD_DECISION and request.payload["study_uid"] == "1.2"


def test_the_same_decision_on_the_same_scan_is_held_back_with_a_warning(built_state: Built) -> None:
    at = _actions()
    at.selectbox(key="dec_choice").set_value("ADVANCED_IMAGING")
    at.text_area(key="dec_note").input("perfusion first")
    at.button(key=SUBMIT).click().run()
    _writer(built_state)
    at = _actions()  # reload: the decision is listed
    assert any(m.value == "**Decisions recorded**" for m in at.markdown)
    at.selectbox(key="dec_choice").set_value("ADVANCED_IMAGING")
    at.text_area(key="dec_note").input("perfusion again?")
    at.button(key=SUBMIT).click().run()
    assert any("already recorded for this scan by dr.test" in w.value for w in at.warning), [w.value for w in at.warning]
    assert not waiting_actions(built_state.settings, "P-ALERT")
    at.selectbox(key="dec_choice").set_value("ADVANCED_IMAGING")
    at.text_area(key="dec_note").input("perfusion again, after the MDT")
    at.checkbox(key="dec_again").check()
    at.button(key=SUBMIT).click().run()
    assert [r.payload["note"] for r in waiting_actions(built_state.settings, "P-ALERT")] == [
        "perfusion again, after the MDT"]
