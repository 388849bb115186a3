"""The capacity model and `manage.py capacity`: arithmetic only, no database."""

import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from detections.operations.capacity import (
    MEASURED,
    SECONDS_PER_DAY,
    Deployment,
    calibrated,
    harness_prediction,
    model,
    socket_event_us,
)

SCALING_DOC = Path(__file__).resolve().parent.parent / "docs" / "scaling.md"


def run(*args) -> str:
    out = StringIO()
    call_command("capacity", *args, stdout=out)
    return out.getvalue()


def test_the_command_prints_one_scenario_table_for_the_arguments_given():
    out = run("--cameras", "1000", "--viewers", "1000", "--retention-days", "30")
    assert out.startswith("1,000 cameras at 1/s, 1,000 viewers of 10 cameras each\n")
    for label in ("ingest", "fan-out", "socket processes", "application hosts", "database", "redis", "media"):
        assert re.search(rf"^{label} +\S", out, re.MULTILINE), label
    assert "6 processes at 187 det/s each" in out
    assert "for 30 days" in out


def test_the_grid_prints_nine_scenarios():
    out = run("--grid", "--retention-days", "30")
    assert out.count(" cameras at 1/s, ") == 9


def test_the_markdown_grid_is_the_table_in_docs_scaling():
    assert run("--grid", "--retention-days", "30", "--markdown") in SCALING_DOC.read_text()


def test_the_harness_prediction_in_docs_scaling_is_the_one_the_model_makes():
    doc = SCALING_DOC.read_text()
    for line in run("--harness").splitlines():
        assert line in doc


def test_doubling_the_cameras_doubles_the_ingest_cores():
    one, two = model(Deployment(500, 10, 30)), model(Deployment(1000, 10, 30))
    assert two.ingest_cores == pytest.approx(2 * one.ingest_cores)
    assert two.detections_per_second == 2 * one.detections_per_second


def test_no_viewers_means_no_fan_out_and_no_socket_process():
    result = model(Deployment(1000, 0, 30))
    assert result.deliveries_per_second == 0
    assert result.fanout_cores == 0
    assert result.socket_processes == 0
    assert result.redis_message_copies_per_second == 0


def test_storage_per_day_is_detections_per_day_times_bytes_per_detection():
    result = model(Deployment(200, 10, 7, detections_per_camera_per_second=0.5))
    detections_per_day = 100 * SECONDS_PER_DAY
    assert result.media_bytes_per_day == detections_per_day * MEASURED.media_bytes_per_detection
    counters_per_day = 200 * 7 * 24 * MEASURED.hourly_counter_bytes
    assert (
        result.database_bytes_per_day == detections_per_day * MEASURED.database_bytes_per_detection + counters_per_day
    )
    assert result.media_bytes_kept == 7 * result.media_bytes_per_day


def test_a_viewer_watches_no_more_cameras_than_there_are():
    result = model(Deployment(5, 3, 30, cameras_per_viewer=10))
    assert result.watched_cameras == 5
    assert result.deliveries_per_second == 15


def test_a_feed_too_busy_to_receive_leaves_no_number_of_socket_processes():
    result = model(Deployment(10_000, 10, 30))
    assert result.socket_processes is None
    assert result.hosts is None
    assert any("no number of processes serves the sockets" in note for note in result.beyond_measured)


def test_routing_by_camera_leaves_only_the_deliveries_to_pay_for():
    result = model(Deployment(1000, 1000, 30, routed_by_camera=True))
    assert result.offers_per_second == result.deliveries_per_second
    assert result.fanout_work_cores == pytest.approx(
        result.deliveries_per_second * MEASURED.delivered_cpu_us_per_socket_event / 1e6
    )


def test_webhook_workers_are_sized_from_the_cpu_per_message():
    result = model(Deployment(100, 10, 30, webhook_messages_per_second=300))
    assert result.webhook_workers == 3  # 300 x 5.8 ms = 1.74 cores, at 0.7 of a core each


def test_two_half_core_hosts_are_predicted_to_ingest_twice_what_one_does():
    one, two = harness_prediction(hosts=1), harness_prediction(hosts=2)
    assert two.rate == pytest.approx(2 * one.rate)
    assert two.rate_per_host == pytest.approx(0.5 * 1000 / MEASURED.ingest_cpu_ms_per_detection)


def test_a_figure_measured_here_replaces_the_committed_one_in_every_prediction():
    inputs = calibrated(cpu_ms_per_detection=10.0, us_per_socket_event=40.0)
    assert harness_prediction(inputs=inputs).rate == pytest.approx(2 * 0.5 * 1000 / 10.0)
    assert model(Deployment(cameras=1000, viewers=0, retention_days=1), inputs).ingest_cores == pytest.approx(10.0)
    with_sockets = harness_prediction(sockets_per_host=100, inputs=inputs)
    per_event_ms = (100 * 40.0 + MEASURED.receive_cpu_us_per_feed_message + MEASURED.receive_cpu_us_per_event) / 1000
    assert with_sockets.rate_per_host == pytest.approx(0.5 * 1000 / (10.0 + 2 * per_event_ms))
    # What is not given stays as committed.
    assert calibrated(cpu_ms_per_detection=10.0).delivered_cpu_us_per_socket_event == (
        MEASURED.delivered_cpu_us_per_socket_event
    )


def test_the_cost_of_a_socket_is_what_sockets_added_per_detection_less_the_feeds_receive_shared_out():
    receive_ms = (MEASURED.receive_cpu_us_per_feed_message + MEASURED.receive_cpu_us_per_event) / 1000
    assert socket_event_us(ms_without=4.0, ms_with=4.0 + receive_ms + 2.5, sockets=100) == pytest.approx(25.0)
    assert socket_event_us(ms_without=4.0, ms_with=3.9, sockets=100) == 0.0  # noise below the receive


def test_the_command_predicts_the_harness_from_a_figure_measured_here():
    out = run("--harness", "--cpu-ms-per-detection", "10", "--us-per-socket-event", "40")
    lines = out.splitlines()
    assert lines[0].startswith("2 hosts x 0.5 core, no sockets: 100 det/s (50.0 per host) at 10 ms/det; MariaDB")
    expected = harness_prediction(
        sockets_per_host=100, inputs=calibrated(cpu_ms_per_detection=10, us_per_socket_event=40)
    )
    assert lines[1].startswith(
        f"2 hosts x 0.5 core, 100 sockets per host watching every camera: {expected.rate:,.0f} det/s"
    )


@pytest.mark.parametrize(
    "args, sentence",
    [
        (["--cameras", "0", "--viewers", "10"], "--cameras must be at least 1"),
        (["--cameras", "-5", "--viewers", "10"], "--cameras must be at least 1"),
        (["--cameras", "10", "--viewers", "-1"], "--viewers cannot be negative"),
        (["--cameras", "10", "--viewers", "1", "--retention-days", "0"], "--retention-days must be at least 1"),
        (["--cameras", "10", "--viewers", "1", "--cameras-per-viewer", "0"], "--cameras-per-viewer must be at least 1"),
        (["--cameras", "10", "--viewers", "1", "--usable-core", "1.5"], "--usable-core must be above 0"),
        (["--cameras", "10"], "Give --cameras and --viewers"),
        (["--harness", "--cpu-ms-per-detection", "0"], "--cpu-ms-per-detection must be above 0"),
        (["--harness", "--us-per-socket-event", "-1"], "--us-per-socket-event must be above 0"),
    ],
)
def test_bad_arguments_are_refused_with_a_sentence(args, sentence):
    with pytest.raises(CommandError, match=re.escape(sentence)):
        run(*args)
