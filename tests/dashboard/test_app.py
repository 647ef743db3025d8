"""The dashboard through Streamlit's AppTest: login, worklist order, a patient, the slider, actions."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from engine.store import open_store, publish_snapshot
from engine.store.board_requests import pending_requests
from engine.usecases.apply_board_request import apply_board_requests
from tests.dashboard.conftest import APP_PATH, log_in, open_page
from tests.dashboard.store_factory import (EXPECTED_ORDER, RADIOLOGIST, URGENCY_ORDER, VIEWER, Built,
                                           add_urgency_patients)


def _app() -> AppTest:
    at = AppTest.from_file(str(APP_PATH), default_timeout=60)
    at.run()
    return at


def _goto(at: AppTest, page: str, patient_key: str) -> AppTest:
    open_page(at, page, patient_key)
    assert not at.exception, at.exception
    return at


def test_login_is_required_and_wrong_password_refused(built_state: Built) -> None:
    at = _app()
    assert [t.value for t in at.title] == ["GlioWatch — log in"]
    assert not at.dataframe and not at.radio, "no page content before login"
    log_in(at, RADIOLOGIST[0], "wrong-password-123")
    assert any("wrong password" in e.value for e in at.error)
    assert not at.dataframe
    log_in(at, RADIOLOGIST[0], RADIOLOGIST[1])
    assert not at.exception, at.exception
    assert [h.value for h in at.header] == ["Worklist"]


def test_banner_and_worklist_ordered_by_attention(built_state: Built) -> None:
    at = log_in(_app(), *RADIOLOGIST)
    banner = next(w.value for w in at.warning if "not for clinical use" in w.value)
    assert "trained on synthetic data only" in banner and "on real MRI" in banner  # the real-data figures
    frame = at.dataframe[0].value
    assert tuple(frame["patient_key"]) == EXPECTED_ORDER
    at.text_input(key="wl_search").input("calm").run()
    assert tuple(at.dataframe[0].value["patient_key"]) == ("P-CALM",)
    at.text_input(key="wl_search").input("").run()
    at.selectbox(key="wl_mgmt").set_value("methylated").run()
    assert tuple(at.dataframe[0].value["patient_key"]) == ("P-ALERT",)


def test_open_patient_from_worklist_shows_timeline(built_state: Built) -> None:
    at = log_in(_app(), *RADIOLOGIST)
    at.selectbox(key="wl_open_key").set_value("P-ALERT").run()
    at.button(key="wl_open").click().run()
    assert not at.exception, at.exception
    assert at.header[0].value == "Patient P-ALERT"
    assert at.get("plotly_chart"), "timeline figure drawn"
    assert any("ALERT_PPD" in e.value for e in at.error), "open alert shown on the timeline"
    calls = at.dataframe[0].value
    assert list(calls["response"]) == ["BASELINE", "PRELIM_PD"]
    assert any("P(PsP) = 43%" in e.label for e in at.expander)


def test_link_with_patient_query_opens_timeline(built_state: Built) -> None:
    at = AppTest.from_file(str(APP_PATH), default_timeout=60)
    at.query_params["patient"] = "P-PPD"
    at.run()
    log_in(at, *RADIOLOGIST)
    assert at.header[0].value == "Patient P-PPD"


def test_image_review_slider_and_registered_volumes(built_state: Built) -> None:
    at = _goto(log_in(_app(), *RADIOLOGIST), "Image review", "P-ALERT")
    assert any("Registered volumes" in s.value for s in at.success)
    links = [m.value for m in at.markdown if "StudyInstanceUIDs=" in m.value]  # both studies, in the viewer
    assert len(links) == 1 and links[0].count("](http://127.0.0.1:8643/viewer?StudyInstanceUIDs=") == 2, links
    slider = at.slider(key="img_slice_axial")
    assert slider.value == 5
    slider.set_value(3).run()
    assert not at.exception, at.exception
    captions = [i.caption for img in at.get("image") for i in img.proto.imgs]
    assert any("slice 3" in c for c in captions), captions
    assert captions == ["2025-01-10 (1) · T1c · axial slice 3", "2025-03-20 (2) · T1c · axial slice 3"]
    at.checkbox(key="img_diff").check().run()
    assert not at.exception, at.exception
    assert len(at.get("image")) == 3, "difference view drawn"


def test_image_review_falls_back_to_native_volumes(built_state: Built) -> None:
    at = _goto(log_in(_app(), *RADIOLOGIST), "Image review", "P-PPD")
    assert any("Native volumes, not registered" in w.value for w in at.warning)
    assert at.checkbox(key="img_diff").disabled


def test_acknowledge_alert_is_applied_with_audit_row(built_state: Built) -> None:
    at = _goto(log_in(_app(), *RADIOLOGIST), "Actions", "P-ALERT")
    at.text_input(key="ack_note").input("discussed at board")
    at.button(key="FormSubmitter:ack_form-Acknowledge").click().run()
    assert not at.exception, at.exception
    assert any(i.value.startswith("Queued.") for i in at.info)
    assert any("1 request(s) waiting for the pipeline" in w.value for w in at.warning), "shown as pending"
    with open_store(built_state.settings.db_path) as store:  # the writer's next cycle
        assert not apply_board_requests(store, built_state.settings.state_dir / "requests").failed
        publish_snapshot(store, built_state.settings.snapshot_path)
    at.run()
    assert not any("waiting for the pipeline" in w.value for w in at.warning)
    with open_store(built_state.settings.db_path, read_only=True) as store:
        acked = store.query("SELECT acknowledged_by, acknowledged_note FROM alerts WHERE alert_id = ?",
                            [built_state.alert_id])
        audit = store.query("""SELECT "user", action, patient_key FROM audit WHERE action = 'acknowledge_alert'""")
        applied = store.query("SELECT kind, status FROM board_requests WHERE kind = 'ACKNOWLEDGE_ALERT'")
    assert acked == [("dr.test", "discussed at board")]
    assert audit == [("dr.test", "acknowledge_alert", "P-ALERT")]
    assert applied == [("ACKNOWLEDGE_ALERT", "APPLIED")]
    with open_store(built_state.settings.snapshot_path, read_only=True) as snapshot:
        assert snapshot.query("SELECT acknowledged_by FROM alerts")[0][0] == "dr.test", "snapshot republished"


def test_viewer_may_not_act(built_state: Built) -> None:
    at = _goto(log_in(_app(), *VIEWER), "Actions", "P-ALERT")
    assert any("may read but not act" in i.value for i in at.info)
    assert not at.get("form")


def test_page_views_are_queued_then_audited(built_state: Built) -> None:
    _goto(log_in(_app(), *RADIOLOGIST), "Patient timeline", "P-CALM")
    requests = built_state.settings.state_dir / "requests"
    assert len(pending_requests(requests)) == 2  # worklist, then the timeline of P-CALM
    with open_store(built_state.settings.db_path) as store:
        result = apply_board_requests(store, requests)
        views = store.query("""SELECT "user", patient_key, detail FROM audit WHERE action = 'view'
                               ORDER BY audit_id""")
    assert len(result.applied) == 2
    assert views == [("dr.test", None, "page=Worklist"), ("dr.test", "P-CALM", "page=Patient timeline")]


@pytest.mark.parametrize("page", ["Stream health", "Patient timeline", "Actions", "Alerts"])
def test_pages_render_without_error(built_state: Built, page: str) -> None:
    at = _goto(log_in(_app(), *RADIOLOGIST), page, "P-QUAR")
    assert not at.exception, at.exception


def test_the_banner_names_each_model_with_what_it_does_on_real_mri() -> None:
    from dashboard.banner import model_banner

    text = model_banner([("gliowatch-anomaly", "0.1.0"), ("gliowatch-unet", "0.3.2")])
    assert "**gliowatch-anomaly 0.1.0**: no training, runs on skull-stripped studies" in text
    assert "**gliowatch-unet 0.3.2**: trained on synthetic data only; on real MRI" in text
    assert "no measurement on real MRI" in model_banner([("site-model", "1")])
    assert "gliowatch-unet" in model_banner([])  # unknown provenance: the default model's warning


# --------------------------------------------------------------------------- urgency and alerts


def test_confirmed_progression_tops_the_worklist_even_after_its_alerts_are_acknowledged(
    built_state: Built,
) -> None:
    alert_ids = add_urgency_patients(built_state.settings)
    at = log_in(_app(), *RADIOLOGIST)
    frame = at.dataframe[0].value
    assert tuple(frame["patient_key"]) == URGENCY_ORDER
    prog = frame.set_index("patient_key").loc["P-PROG"]
    assert prog["priority"] == "Confirmed progression"
    assert prog["latest_call"] == "PD (2025-03-30); since then NE", "not shown as NE"
    assert prog["latest_call_date"] == "2025-05-25" and prog["next_action"].startswith("Tumour board")
    assert not any("None" in str(v) for v in frame.to_numpy().ravel()), "no 'None' cell"
    assert any("P-FLAG** · Flagged scan, not reviewed: 2025-05-15: segmentation flags: et_without_enhancement"
               in m.value for m in at.markdown), "full reasons listed"

    at = _goto(at, "Actions", "P-PROG")  # acknowledge its last open alert, the writer applies it
    at.text_input(key="ack_note").input("board: second-line therapy")
    at.button(key="FormSubmitter:ack_form-Acknowledge").click().run()
    with open_store(built_state.settings.db_path) as store:
        assert not apply_board_requests(store, built_state.settings.state_dir / "requests").failed
        publish_snapshot(store, built_state.settings.snapshot_path)
    at.radio(key="page").set_value("Worklist").run()
    assert not at.exception, at.exception
    frame = at.dataframe[0].value
    assert tuple(frame["patient_key"]) == URGENCY_ORDER
    assert frame.set_index("patient_key").loc["P-PROG", "open_alerts"] == 0

    at.radio(key="page").set_value("Alerts").run()  # acknowledged alerts keep their history
    assert not at.exception, at.exception
    assert [h.value for h in at.header] == ["Alerts"]
    alerts = at.dataframe[0].value
    prog_alerts = alerts[alerts["patient_key"] == "P-PROG"].set_index("alert")
    assert prog_alerts.loc["PD confirmed", ["status", "acknowledged_by", "acknowledged_note"]].tolist() == [
        "Acknowledged", "dr.test", "board: second-line therapy"]
    assert prog_alerts.loc["Preliminary PD", ["acknowledged_by", "acknowledged_note"]].tolist() == [
        "dr.earlier", "repeat MRI booked"]
    with open_store(built_state.settings.snapshot_path, read_only=True) as snapshot:
        assert snapshot.query("SELECT acknowledged_by FROM alerts WHERE alert_id = ?",
                              [alert_ids["ALERT_PD_CONFIRMED"]]) == [("dr.test",)]


def test_alerts_page_lists_open_and_acknowledged_alerts(built_state: Built) -> None:
    add_urgency_patients(built_state.settings)
    at = log_in(_app(), *RADIOLOGIST)
    at.radio(key="page").set_value("Alerts").run()
    assert not at.exception, at.exception
    assert any("3 open, 1 acknowledged, across 3 patients" in c.value for c in at.caption)
    alerts = at.dataframe[0].value
    assert list(alerts["status"]) == ["Open", "Open", "Open", "Acknowledged"], "open first"
    opened = alerts[alerts["status"] == "Open"]
    assert set(opened["patient_key"]) == {"P-ALERT", "P-PROG", "P-INFO"}
    assert set(opened["acknowledged_by"]) == {"—"} and set(opened["acknowledged_note"]) == {"—"}
    acked = alerts[alerts["status"] == "Acknowledged"].iloc[0]
    assert (acked["patient_key"], acked["acknowledged_by"], acked["acknowledged_note"], acked["acknowledged"]) == (
        "P-PROG", "dr.earlier", "repeat MRI booked", "2025-06-01 12:00")
    at.radio(key="al_state").set_value("Acknowledged").run()
    assert list(at.dataframe[0].value["patient_key"]) == ["P-PROG"]
    at.radio(key="al_state").set_value("Open").run()
    at.multiselect(key="al_severity").select("CRITICAL").run()
    assert list(at.dataframe[0].value["alert"]) == ["PD confirmed"]
