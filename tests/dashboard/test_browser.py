"""The dashboard in a real headless Chromium against `streamlit run` on a loopback port.

Logs in, opens a patient from the worklist, moves the slice slider on the image review page,
acknowledges an alert (queued, then shown without a click once the writer applied it); then the
image review of a store the real pipeline produced (``pipeline_state``), with diameters measured by
clicking on the image. Screenshots go to test-artifacts/dashboard-*.png.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from engine.settings import Settings
from engine.store import open_store, publish_snapshot
from engine.usecases.apply_board_request import apply_board_requests
from engine.store.board_requests import RequestKind, queued_requests, requests_dir
from flows.cmd_dashboard import start_dashboard
from tests.dashboard.pipeline_state import PipelineState
from tests.dashboard.store_factory import RADIOLOGIST, Built
from tests.support import free_port, wait_until_healthy

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (apt install chromium)")
TIMEOUT_MS = 20_000


@contextmanager
def _serve(settings: Settings, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "streamlit.log"
    proc = start_dashboard(settings, port=port, log_path=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, proc, log, what="streamlit", timeout_s=45.0)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.fixture
def server(built_state: Built, tmp_path: Path) -> Iterator[str]:
    with _serve(built_state.settings, tmp_path) as url:
        yield url


@pytest.fixture
def pipeline_server(pipeline_state: PipelineState, tmp_path: Path) -> Iterator[str]:
    with _serve(pipeline_state.settings, tmp_path) as url:
        yield url


@contextmanager
def _browser_page(tmp_path: Path, *, height_px: int = 1000) -> Iterator[Any]:
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": height_px})
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            context.close()


def _log_in(page: Any) -> None:
    page.get_by_label("User name").fill(RADIOLOGIST[0])
    page.get_by_label("Password", exact=True).fill(RADIOLOGIST[1])
    page.get_by_role("button", name="Log in").click()


def test_login_open_patient_slide_and_acknowledge(
    server: str, built_state: Built, tmp_path: Path, artifacts_dir: Path
) -> None:
    with _browser_page(tmp_path) as page:
        page.goto(server)
        page.get_by_label("User name").wait_for()
        page.screenshot(path=artifacts_dir / "dashboard-1-login.png")
        _log_in(page)

        page.get_by_role("heading", name="Worklist").wait_for()
        page.get_by_text("trained on synthetic data only").wait_for()
        page.get_by_role("button", name="Open timeline").wait_for()  # the last element drawn
        page.locator('[data-testid="stDataFrame"]').first.wait_for()
        page.get_by_text("MGMT", exact=True).wait_for()
        page.screenshot(path=artifacts_dir / "dashboard-2-worklist.png", full_page=True)

        page.get_by_role("button", name="Open timeline").click()  # first row: P-ALERT
        page.get_by_role("heading", name="Patient P-ALERT").wait_for()
        page.locator(".js-plotly-plot").first.wait_for()
        page.get_by_text("P(PsP) = 43%").first.wait_for()
        page.screenshot(path=artifacts_dir / "dashboard-3-timeline.png", full_page=True)

        page.get_by_text("Image review", exact=True).click()
        page.get_by_text("T1c · axial slice 5").first.wait_for()
        slider = page.get_by_role("slider", name="Slice")
        assert slider.input_value() == "5"
        slider.focus()
        slider.press("ArrowLeft")
        slider.press("ArrowLeft")
        page.get_by_text("T1c · axial slice 3").first.wait_for()
        page.screenshot(path=artifacts_dir / "dashboard-4-images.png", full_page=True)

        page.get_by_text("Actions", exact=True).click()
        page.get_by_label("Note (optional)").fill("seen at tumour board")
        page.get_by_role("button", name="Acknowledge").click()
        page.get_by_text("1 request(s) waiting for the pipeline").wait_for()
        page.get_by_text("acknowledge an alert by dr.test").wait_for()
        page.screenshot(path=artifacts_dir / "dashboard-5a-queued.png", full_page=True)
        with open_store(built_state.settings.db_path) as store:  # the writer's next cycle
            assert not apply_board_requests(store, requests_dir(built_state.settings.state_dir)).failed
            publish_snapshot(store, built_state.settings.snapshot_path)
        page.get_by_text("No unacknowledged alerts for this patient.").wait_for()  # no click: it reruns
        page.screenshot(path=artifacts_dir / "dashboard-5b-acknowledged.png", full_page=True)
    with open_store(built_state.settings.db_path, read_only=True) as store:
        assert store.query("SELECT acknowledged_by, acknowledged_note FROM alerts WHERE alert_id = ?",
                           [built_state.alert_id]) == [("dr.test", "seen at tumour board")]
        assert store.query("""SELECT count(*) FROM audit WHERE action = 'acknowledge_alert'""") == [(1,)]


def test_image_review_on_a_store_the_pipeline_produced(
    pipeline_server: str, pipeline_state: PipelineState, tmp_path: Path, artifacts_dir: Path
) -> None:
    """Both timepoints drawn in baseline space with their labels, no error box, the difference
    view: the last two scans (the page's default pair) on T1c, then the baseline against the last
    scan on FLAIR (the baseline's own FLAIR put on the baseline grid)."""
    with _browser_page(tmp_path, height_px=2000) as page:
        page.goto(f"{pipeline_server}/?patient={pipeline_state.patient_key}")
        _log_in(page)
        page.get_by_role("heading", name=f"Patient {pipeline_state.patient_key}").wait_for()
        page.get_by_text("Image review", exact=True).click()
        page.get_by_text("Registered volumes (baseline space).").wait_for()
        page.get_by_text("(2) · T1c · axial slice").first.wait_for()
        _assert_images_drawn(page, 2)
        page.get_by_text("Difference view", exact=True).click()
        page.get_by_text("Difference (later − earlier)").wait_for()
        _assert_images_drawn(page, 3)
        page.screenshot(path=artifacts_dir / "dashboard-6-pipeline-difference.png")

        page.get_by_text("FLAIR", exact=True).click()
        page.get_by_text("(2) · FLAIR · axial slice").first.wait_for()
        page.locator('[data-testid="stSelectbox"]').filter(has_text="Earlier timepoint").click()
        page.get_by_role("option").first.click()  # the baseline
        page.get_by_text("(1) · FLAIR · axial slice").first.wait_for()
        _assert_images_drawn(page, 3)
        page.screenshot(path=artifacts_dir / "dashboard-7-pipeline-baseline-flair.png")


def _assert_images_drawn(page: Any, n_images: int) -> None:
    """``n_images`` images loaded with pixels (not broken links), no error box, no exception."""
    page.wait_for_function(  # polls until every image has loaded, or fails after TIMEOUT_MS
        """n => { const imgs = [...document.querySelectorAll('[data-testid="stImage"] img')];
                  return imgs.length === n && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
        arg=n_images)
    errors = page.locator('[data-testid="stAlertContentError"], [data-testid="stException"]')
    assert errors.count() == 0, errors.all_inner_texts()


def test_reload_keeps_the_login_and_the_alerts_page_renders(
    server: str, tmp_path: Path, artifacts_dir: Path
) -> None:
    """A reload (F5) does not log the reader out; the Alerts page and the worklist draw no error box."""
    with _browser_page(tmp_path) as page:
        page.goto(server)
        _log_in(page)
        page.get_by_role("heading", name="Worklist").wait_for()
        page.wait_for_function("() => new URL(location.href).searchParams.has('session')")
        assert RADIOLOGIST[1] not in page.url
        page.reload()
        page.get_by_role("heading", name="Worklist").wait_for()
        page.get_by_role("button", name="Open timeline").wait_for()
        assert page.get_by_label("Password", exact=True).count() == 0, "no login form after a reload"
        page.get_by_text("Alerts", exact=True).click()
        page.get_by_role("heading", name="Alerts").wait_for()
        page.locator('[data-testid="stDataFrame"]').first.wait_for()
        page.screenshot(path=artifacts_dir / "dashboard-8-alerts.png", full_page=True)
        errors = page.locator('[data-testid="stAlertContentError"], [data-testid="stException"]')
        assert errors.count() == 0, errors.all_inner_texts()

        page.get_by_text("Worklist", exact=True).click()  # a click on a row opens the patient
        grid = page.locator('[data-testid="stDataFrame"]').first
        grid.wait_for()
        grid.click(position={"x": 15, "y": 35 + 17})  # the first row's selection box (P-ALERT)
        page.get_by_role("heading", name="Patient P-ALERT").wait_for()


def test_rano_lines_and_a_reader_confirmation_on_a_store_the_pipeline_produced(
    pipeline_server: str, pipeline_state: PipelineState, tmp_path: Path, artifacts_dir: Path
) -> None:
    """Issue 32: the later scan opens on the slice where its diameters were measured, with the RANO
    lines drawn and the per-lesion tables; the reader measures the largest lesion's diameters by
    clicking on the T1c slice (``browser_clicks``) and accepts the segmentation, the writer applies
    both, and after a reload the scan reads "Confirmed by dr.test" with the clicked diameters in force
    and the entries in the reader's history; a lesion the model missed, drawn by clicking too, is stored
    with its ends and drawn (pink) on its slice after the reload."""
    from tests.dashboard.browser_clicks import click_diameters, click_missed_lesion
    from tests.dashboard.test_reader_pipeline import writer_cycle

    with _browser_page(tmp_path, height_px=2400) as page:
        page.goto(f"{pipeline_server}/?patient={pipeline_state.patient_key}")
        _log_in(page)
        page.get_by_role("heading", name=f"Patient {pipeline_state.patient_key}").wait_for()
        page.get_by_text("Image review", exact=True).click()
        page.get_by_text("Registered volumes (baseline space).").wait_for()
        try:  # the first image review of a server reads and resamples the volumes: slow on a loaded machine
            page.get_by_text("RANO lines: #1").first.wait_for(timeout=3 * TIMEOUT_MS)
        finally:
            page.screenshot(path=artifacts_dir / "dashboard-9-rano-lines.png", full_page=True)
        page.get_by_text("Lesions · ").first.wait_for()
        _assert_images_drawn(page, 2)
        page.get_by_text("Proposed: the automatic segmentation").wait_for()
        page.screenshot(path=artifacts_dir / "dashboard-9-rano-lines.png", full_page=True)

        lesion, clicked = click_diameters(page, pipeline_state, artifacts_dir / "dashboard-9b-clicked-diameters.png")
        missed = click_missed_lesion(page, pipeline_state, artifacts_dir / "dashboard-9c-clicked-missed-lesion.png")
        page.get_by_role("button", name="Accept segmentation").click()
        # the page may still show the "Queued." of the clicked diameters: wait for the accept itself
        _wait_for_queued(pipeline_state.settings, RequestKind.ACCEPT_SEGMENTATION)
        assert writer_cycle(pipeline_state.settings) == ()
        page.reload()
        page.get_by_text("Image review", exact=True).click()
        page.get_by_text("Confirmed by dr.test").wait_for(timeout=3 * TIMEOUT_MS)
        page.get_by_text("Reader's values of this scan").wait_for()
        page.get_by_text(f"#{lesion}: {clicked.d1_mm:g} × {clicked.d2_mm:g} mm (dr.test)").wait_for()
        page.get_by_text("RANO lines: #1").first.wait_for()
        page.get_by_text("reader-entered new lesion (pink)").wait_for()  # the missed lesion, drawn on its slice
        errors = page.locator('[data-testid="stAlertContentError"], [data-testid="stException"]')
        assert errors.count() == 0, errors.all_inner_texts()
        page.screenshot(path=artifacts_dir / "dashboard-10-reader-confirmed.png", full_page=True)
    with open_store(pipeline_state.settings.snapshot_path, read_only=True) as store:
        (value,), = store.query("SELECT value_json FROM reader_values WHERE value_kind = 'DIAMETERS'")
        (new, *ends), = store.query("""SELECT value_json, d1_p0, d1_p1, d2_p0, d2_p1 FROM reader_values
                                       WHERE value_kind = 'NEW_LESION'""")
    assert json.loads(value) == {"d1_mm": clicked.d1_mm, "d2_mm": clicked.d2_mm}
    assert json.loads(new) == {"present": True, "d1_mm": missed.d1_mm, "d2_mm": missed.d2_mm}
    assert ends == list(missed.world_ends().values())


def _wait_for_queued(settings: Settings, kind: RequestKind, *, timeout_s: float = 60.0) -> None:
    """Until a request of ``kind`` is in the board queue (the dashboard writes it when the click's
    rerun reaches the button's handler, some time after the click)."""
    deadline = time.monotonic() + timeout_s
    while not any(r.kind == kind for r in queued_requests(requests_dir(settings.state_dir))):
        if time.monotonic() > deadline:
            pytest.fail(f"No {kind} request reached the board queue within {timeout_s:g} s")
        time.sleep(0.2)
