"""The admin's detection page: the snapshot, with its bounding box drawn in the
image's own pixels."""

import re

import pytest
from admin_pages import detail_page
from conftest import store_detection
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_the_detail_page_shows_the_snapshot(admin_client):
    detection = store_detection()

    response = admin_client.get(reverse("admin:detections_detection_change", args=[detection.pk]))

    assert response.status_code == 200
    assert f'<img src="{detection.image.url}" alt="Snapshot of detection {detection.pk}"' in response.content.decode()


def test_the_detail_page_draws_the_bounding_box_over_the_snapshot_in_image_pixels(admin_client):
    detection = store_detection(size=(640, 480), bbox=[412, 220, 160, 96], confidence=0.91)

    page = detail_page(admin_client, detection)

    frame = re.search(
        r'<div style="position:relative;display:inline-block;max-width:100%">(.*?)</div>', page, re.DOTALL
    ).group(1)
    # The image, then an SVG laid over all of it, whose coordinates are the
    # image's own 640x480 pixels: the box scales with the picture.
    assert frame.index(f'<img src="{detection.image.url}" alt="Snapshot of detection {detection.pk}"') < frame.index(
        "<svg"
    )
    svg = re.search(r"<svg[^>]*>", frame).group(0)
    assert 'viewBox="0 0 640 480"' in svg
    assert 'preserveAspectRatio="none"' in svg
    assert "position:absolute;left:0;top:0;width:100%;height:100%" in svg
    rect = re.search(r"<rect [^>]*/>", frame).group(0)
    assert 'x="412" y="220" width="160" height="96"' in rect
    assert 'fill="none"' in rect
    assert "Bounding box x=412, y=220, 160×96 px, on the 640×480 snapshot." in page


def test_the_detail_page_draws_no_box_when_the_detection_has_none(admin_client):
    detection = store_detection(size=(640, 480), bbox=None)

    page = detail_page(admin_client, detection)

    assert f'<img src="{detection.image.url}" alt="Snapshot of detection {detection.pk}"' in page
    assert "<svg" not in page.split('class="snapshot"')[1].split("</div>")[0]
    assert "Bounding box" not in page


def test_the_detail_page_says_so_when_no_snapshot_was_sent(admin_client):
    detection = store_detection(with_image=False, bbox=[1, 2, 3, 4])

    assert "No snapshot was sent with this detection." in detail_page(admin_client, detection)
