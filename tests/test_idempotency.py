"""Cameras retry: the same detection is stored and published once, however often it comes."""

from concurrent.futures import ThreadPoolExecutor

from conftest import stored_files
from feed_client import assert_nothing_else_queued, connect, receive, receive_events

from detections.models import Detection, Event, IdempotencyKey


def post_in_parallel(server, path, body, times, headers=None):
    def post(_):
        with server.device() as http:
            return http.post(path, json=body, headers=headers or {})

    with ThreadPoolExecutor(max_workers=times) as pool:
        return list(pool.map(post, range(times)))


def test_twenty_parallel_identical_posts_store_one_row_and_publish_one_event(server, simulated_detection):
    body = simulated_detection()
    with connect(server) as ws:
        responses = post_in_parallel(server, "/api/detect", body, 20)
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] * 19 + [201], [r.text for r in responses if r.status_code not in (200, 201)]
        assert len({r.json()["id"] for r in responses}) == 1
        assert receive(ws)["tracking_id"] == body["id"]
        assert_nothing_else_queued(ws)
    assert Detection.objects.count() == 1
    assert Event.objects.count() == 1
    files = stored_files(server.media_root)
    assert len(files) == 2, files  # one snapshot, one thumbnail: the losers' files were removed


def test_twenty_parallel_posts_with_one_idempotency_key_store_one_row(server, simulated_detection):
    body = simulated_detection()
    responses = post_in_parallel(server, "/api/detect", body, 20, headers={"Idempotency-Key": "unit-7-0001"})
    assert sorted(r.status_code for r in responses) == [200] * 19 + [201]
    assert Detection.objects.count() == 1
    assert IdempotencyKey.objects.get().detection_id == responses[0].json()["id"]


def test_the_same_idempotency_key_with_a_different_body_is_refused_with_422(server, simulated_detection):
    with server.device() as http:
        first = http.post("/api/detect", json=simulated_detection(), headers={"Idempotency-Key": "k-1"})
        assert first.status_code == 201
        reused = http.post("/api/detect", json=simulated_detection(), headers={"Idempotency-Key": "k-1"})
        assert reused.status_code == 422
        assert reused.json()["error"] == "idempotency_key_reused"
    assert Detection.objects.count() == 1


def test_a_retried_batch_stores_nothing_twice_and_reports_each_item(server, simulated_detection):
    good = [simulated_detection() for _ in range(3)]
    bad = {"id": "x", "vehicle_type": "spaceship", "time": "2026-11-24T08:00:00Z"}
    batch = {"detections": [good[0], bad, good[1], good[2]]}
    with server.device() as http, connect(server) as ws:
        first = http.post("/api/detections/batch/", json=batch)
        assert first.status_code == 200, first.text
        assert [r["status"] for r in first.json()["results"]] == ["created", "error", "created", "created"]
        assert first.json()["results"][1]["field"] == "vehicle_type"
        again = http.post("/api/detections/batch/", json=batch)
        assert [r["status"] for r in again.json()["results"]] == ["duplicate", "error", "duplicate", "duplicate"]
        assert [r.get("id") for r in again.json()["results"]] == [r.get("id") for r in first.json()["results"]]
        assert [receive(ws)["tracking_id"] for _ in range(3)] == [d["id"] for d in good]
        assert_nothing_else_queued(ws)
    assert Detection.objects.count() == 3
    assert Event.objects.count() == 3


def test_a_batch_over_the_limit_is_refused_whole_with_413(server):
    with server.device() as http:
        response = http.post("/api/detections/batch/", json={"detections": [{}] * 501})
    assert response.status_code == 413
    assert response.json()["error"] == "batch_too_large"
    assert Detection.objects.count() == 0


def test_parallel_identical_batches_store_each_detection_once_and_leave_no_orphan_file(server, simulated_detection):
    batch = {"detections": [simulated_detection(camera=("gate-1", "gate-2")[n % 2]) for n in range(30)]}
    with connect(server) as ws:
        responses = post_in_parallel(server, "/api/detections/batch/", batch, 5)
        assert [r.status_code for r in responses] == [200] * 5, [r.text for r in responses]
        answers = [r.json() for r in responses]
        assert sum(a["created"] for a in answers) == 30  # each item created by exactly one of them
        ids = {tuple(r["id"] for r in a["results"]) for a in answers}
        assert len(ids) == 1  # and every answer names the same stored row for each item
        assert [m["tracking_id"] for m in receive_events(ws, 30)] == [d["id"] for d in batch["detections"]]
        assert_nothing_else_queued(ws)
    assert Detection.objects.count() == 30
    assert list(Event.objects.values_list("seq", flat=True)) == list(range(1, 31))
    assert len(stored_files(server.media_root)) == 60
