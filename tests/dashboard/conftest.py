"""Fixtures: a small state folder (store, snapshot, volumes, users) copied fresh for each test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.settings import Settings
from tests.dashboard.pipeline_state import PipelineState, build_pipeline_state
from streamlit.testing.v1 import AppTest

from tests.dashboard.store_factory import RADIOLOGIST, Built, build_state

APP_PATH = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


def log_in(at: AppTest, name: str = RADIOLOGIST[0], password: str = RADIOLOGIST[1]) -> AppTest:
    """Fill the local login form of a started app and submit it."""
    at.text_input(key="login_name").input(name)
    at.text_input(key="login_password").input(password)
    at.button[0].click().run()
    return at


def open_page(at: AppTest, page: str, patient_key: str) -> AppTest:
    """Choose a patient in the sidebar and go to ``page``."""
    at.text_input(key="patient_key").input(patient_key)
    at.radio(key="page").set_value(page).run()
    return at


@pytest.fixture(scope="session")
def _template_state(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    built = build_state(tmp_path_factory.mktemp("template") / "state")
    return built.settings.state_dir, built.alert_id


@pytest.fixture
def built_state(_template_state: tuple[Path, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Built:
    """A private copy of the template state; the app's settings loader points at it."""
    source, alert_id = _template_state
    target = tmp_path / "state"
    shutil.copytree(source, target)
    monkeypatch.setenv("GLIOWATCH_STATE_DIR", str(target))
    monkeypatch.delenv("GLIOWATCH_CONFIG", raising=False)
    return Built(settings=Settings(state_dir=target), alert_id=alert_id)


@pytest.fixture(scope="session")
def _pipeline_template(tmp_path_factory: pytest.TempPathFactory) -> PipelineState:
    return build_pipeline_state(tmp_path_factory.mktemp("pipeline"))


@pytest.fixture
def pipeline_state(_pipeline_template: PipelineState, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> PipelineState:
    """A private copy of a state folder the real pipeline produced; the app's settings point at it."""
    target = tmp_path / "state"
    shutil.copytree(_pipeline_template.settings.state_dir, target)
    monkeypatch.setenv("GLIOWATCH_STATE_DIR", str(target))
    monkeypatch.delenv("GLIOWATCH_CONFIG", raising=False)
    return PipelineState(settings=Settings(state_dir=target), patient_key=_pipeline_template.patient_key,
                         study_uids=_pipeline_template.study_uids)
