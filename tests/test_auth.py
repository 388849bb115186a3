"""Who may do what on the REST API: device keys write, viewers read, staff delete."""

import io

import pytest
from conftest import CAMERAS, api_client, detection_body, make_user_token
from django.core.management import call_command
from django.utils import timezone

from detections.core.device_keys import issue_device_key, revoke_device_keys, rotate_device_key
from detections.models import Camera, Detection, DeviceKey

READ_ENDPOINTS = ["/api/detections/", "/api/stats", "/api/detections/{id}/"]
INGEST_ENDPOINTS = ["/api/detect", "/api/detections/"]
DELETE_ENDPOINTS = ["/api/delete/{id}", "/api/detections/{id}/"]


@pytest.fixture
def stored(device_client) -> int:
    response = device_client.post("/api/detect", detection_body(), format="json")
    assert response.status_code == 201
    return response.json()["id"]


def assert_error(response, status: int, code: str | None = None):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["detail"]
    if code:
        assert body["error"] == code


# --- Device keys -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", INGEST_ENDPOINTS)
def test_posting_without_a_key_is_401_and_stores_nothing(credentials, path):
    response = api_client().post(path, detection_body(), format="json")
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Token")
    assert Detection.objects.count() == 0


@pytest.mark.parametrize("secret", ["vmk_not-a-real-key", "0123456789abcdef0123456789abcdef01234567", "a b"])
def test_posting_with_a_bad_key_is_401(credentials, secret):
    assert_error(api_client(secret).post("/api/detect", detection_body(), format="json"), 401)
    assert Detection.objects.count() == 0


def test_a_device_key_works_as_bearer_too(credentials):
    client = api_client()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {credentials.device}")
    assert client.post("/api/detect", detection_body(), format="json").status_code == 201


def test_a_key_may_only_post_for_its_own_cameras(credentials):
    Camera.objects.create(name="elsewhere")
    response = api_client(credentials.device).post("/api/detect", detection_body(camera="elsewhere"), format="json")
    assert_error(response, 403, "camera_not_allowed")
    assert Detection.objects.count() == 0


def test_unknown_cameras_are_not_created_on_the_fly(credentials):
    response = api_client(credentials.device).post("/api/detect", detection_body(camera="new-cam"), format="json")
    assert_error(response, 403, "camera_not_allowed")
    assert not Camera.objects.filter(name="new-cam").exists()


def test_a_key_bound_to_one_camera_may_leave_camera_out(cameras):
    _, secret = issue_device_key(cameras=[cameras["gate-2"]])
    response = api_client(secret).post("/api/detect", detection_body(camera=...), format="json")
    assert response.status_code == 201
    assert response.json()["camera"] == "gate-2"


def test_a_key_bound_to_several_cameras_must_name_one(credentials):
    response = api_client(credentials.device).post("/api/detect", detection_body(camera=...), format="json")
    assert_error(response, 400)
    assert response.json()["field"] == "camera"
    assert all(name in response.json()["detail"] for name in CAMERAS)


def test_revoking_a_key_takes_effect_on_the_very_next_request(credentials):
    client = api_client(credentials.device)
    assert client.post("/api/detect", detection_body(id="a"), format="json").status_code == 201
    revoke_device_keys(DeviceKey.objects.all())
    assert_error(client.post("/api/detect", detection_body(id="b"), format="json"), 401)


def test_rotating_a_key_revokes_the_old_one_and_the_new_one_keeps_its_cameras(credentials):
    old = DeviceKey.objects.get()
    new, secret = rotate_device_key(old)
    assert_error(api_client(credentials.device).post("/api/detect", detection_body(), format="json"), 401)
    assert api_client(secret).post("/api/detect", detection_body(), format="json").status_code == 201
    assert sorted(c.name for c in new.cameras.all()) == sorted(CAMERAS)


def test_each_keys_last_use_and_its_cameras_last_sight_are_recorded(credentials):
    before = timezone.now()
    api_client(credentials.device).post("/api/detect", detection_body(camera="yard"), format="json")
    assert DeviceKey.objects.get().last_used_at >= before
    assert Camera.objects.get(name="yard").last_seen_at >= before
    assert Camera.objects.get(name="gate-2").last_seen_at is None


def test_only_the_hash_of_a_key_is_stored(credentials):
    key = DeviceKey.objects.get()
    assert credentials.device not in (key.key_hash, key.prefix, key.label)
    assert credentials.device.startswith(key.prefix)


def test_a_device_key_cannot_read_or_delete(credentials, stored):
    device = api_client(credentials.device)
    for path in READ_ENDPOINTS:
        assert_error(device.get(path.format(id=stored)), 403)
    for path in DELETE_ENDPOINTS:
        assert_error(device.delete(path.format(id=stored)), 403)
    assert Detection.objects.filter(pk=stored).exists()


def test_a_device_over_its_rate_gets_429_with_retry_after(credentials, settings):
    settings.DEVICE_RATE_LIMIT = "3/h"  # an hour-long window: the test cannot straddle two
    client = api_client(credentials.device)
    statuses = [client.post("/api/detect", detection_body(id=f"r{i}"), format="json").status_code for i in range(4)]
    assert statuses == [201, 201, 201, 429]
    limited = client.post("/api/detect", detection_body(id="r9"), format="json")
    assert_error(limited, 429, "throttled")
    assert 1 <= int(limited["Retry-After"]) <= 3600
    assert Detection.objects.count() == 3


def test_the_rate_is_counted_per_device(cameras, settings):
    settings.DEVICE_RATE_LIMIT = "1/h"
    _, first = issue_device_key(cameras=[cameras["gate-1"]])
    _, second = issue_device_key(cameras=[cameras["gate-1"]])
    assert api_client(first).post("/api/detect", detection_body(id="1"), format="json").status_code == 201
    assert api_client(second).post("/api/detect", detection_body(id="2"), format="json").status_code == 201
    assert api_client(first).post("/api/detect", detection_body(id="3"), format="json").status_code == 429


# --- Viewers and staff --------------------------------------------------------------------------


@pytest.mark.parametrize("path", READ_ENDPOINTS)
def test_reading_without_credentials_is_401(credentials, stored, path):
    assert_error(api_client().get(path.format(id=stored)), 401, "not_authenticated")


@pytest.mark.parametrize("path", READ_ENDPOINTS)
def test_a_viewer_token_reads_as_token_or_bearer(credentials, stored, path):
    assert api_client(credentials.viewer).get(path.format(id=stored)).status_code == 200
    bearer = api_client()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {credentials.viewer}")
    assert bearer.get(path.format(id=stored)).status_code == 200


def test_a_logged_in_browser_session_reads(credentials, stored, client, django_user_model):
    django_user_model.objects.create_user("browser", password="pw-for-the-browser-1")
    client.login(username="browser", password="pw-for-the-browser-1")
    assert client.get("/api/stats").status_code == 200


def test_a_viewer_cannot_post_or_delete(credentials, stored):
    viewer = api_client(credentials.viewer)
    assert_error(viewer.post("/api/detect", detection_body(id="v"), format="json"), 403)
    for path in DELETE_ENDPOINTS:
        assert_error(viewer.delete(path.format(id=stored)), 403)
    assert Detection.objects.count() == 1


@pytest.mark.parametrize("path", DELETE_ENDPOINTS)
def test_staff_with_the_delete_permission_may_delete(credentials, stored, path):
    response = api_client(credentials.staff).delete(path.format(id=stored))
    assert response.status_code in (200, 204)
    assert not Detection.objects.filter(pk=stored).exists()


def test_media_files_are_for_viewers_only(credentials, stored, device_client):
    url = api_client(credentials.viewer).get(f"/api/detections/{stored}/").json()["image_url"]
    assert_error(api_client().get(url), 401)
    response = api_client(credentials.viewer).get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"\xff\xd8")


def test_the_public_feed_setting_opens_reading_but_not_writing(credentials, stored, settings):
    settings.PUBLIC_FEED = True
    anonymous = api_client()
    for path in READ_ENDPOINTS:
        assert anonymous.get(path.format(id=stored)).status_code == 200
    assert_error(anonymous.post("/api/detect", detection_body(id="p"), format="json"), 401)
    assert_error(anonymous.delete(f"/api/delete/{stored}"), 401)


def test_drf_create_token_makes_a_working_viewer_token(credentials, stored, django_user_model):
    django_user_model.objects.create_user("phone-app")
    out = io.StringIO()
    call_command("drf_create_token", "phone-app", stdout=out)
    token = out.getvalue().split()[2]
    assert api_client(token).get("/api/stats").status_code == 200


def test_a_token_of_a_deactivated_user_no_longer_reads(credentials, django_user_model):
    token = make_user_token("leaver")
    django_user_model.objects.filter(username="leaver").update(is_active=False)
    assert_error(api_client(token).get("/api/stats"), 401)


# --- The create_camera command --------------------------------------------------------------


def run_create_camera(*args) -> list[str]:
    out = io.StringIO()
    call_command("create_camera", *args, stdout=out)
    return out.getvalue().strip().splitlines()


@pytest.mark.django_db
def test_create_camera_prints_a_working_key_as_its_last_line():
    secret = run_create_camera("north-gate", "--description", "North gate, lane 1")[-1]
    assert Camera.objects.get(name="north-gate").description == "North gate, lane 1"
    response = api_client(secret).post("/api/detect", detection_body(camera="north-gate"), format="json")
    assert response.status_code == 201


@pytest.mark.django_db
def test_create_camera_rotate_revokes_the_old_key_and_prints_a_new_one():
    old = run_create_camera("north-gate")[-1]
    new = run_create_camera("north-gate", "--rotate")[-1]
    assert new != old
    assert_error(api_client(old).post("/api/detect", detection_body(camera="north-gate"), format="json"), 401)
    assert api_client(new).post("/api/detect", detection_body(camera="north-gate"), format="json").status_code == 201


@pytest.mark.django_db
def test_create_camera_refuses_an_existing_camera_without_rotate():
    from django.core.management import CommandError

    run_create_camera("north-gate")
    with pytest.raises(CommandError, match="--rotate"):
        run_create_camera("north-gate")


# --- Keys in the admin -------------------------------------------------------------------------


def test_the_admin_issues_a_key_shown_once_and_revokes_it(admin_client, cameras):
    response = admin_client.post(
        "/admin/detections/devicekey/add/", {"label": "unit 12", "cameras": [cameras["yard"].pk]}, follow=True
    )
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    secret = next(
        word
        for m in shown
        for word in m.replace("<code>", " ").replace("</code>", " ").split()
        if word.startswith("vmk_")
    )
    assert api_client(secret).post("/api/detect", detection_body(camera="yard"), format="json").status_code == 201

    key = DeviceKey.objects.get(label="unit 12")
    admin_client.post("/admin/detections/devicekey/", {"action": "revoke", "_selected_action": [key.pk]}, follow=True)
    assert_error(api_client(secret).post("/api/detect", detection_body(camera="yard", id="2"), format="json"), 401)
    listing = admin_client.get("/admin/detections/devicekey/").content.decode()
    assert secret not in listing
