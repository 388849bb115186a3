"""Every change to sites: create, change, delete. The API and the admin call
these; a change that alters what the visits are (cameras, roles, `since`,
the walk's parameters) bumps the site's revision, and the engine derives its
history again in the background (`sites.engine`)."""

from dataclasses import dataclass

from django.db import transaction

from detections.models import Camera
from detections.sites.models import Site, SiteCamera


@dataclass(frozen=True)
class CameraRole:
    camera: Camera
    role: str


def site_create(*, cameras: list[CameraRole], **fields) -> Site:
    with transaction.atomic():
        site = Site(**fields)
        site.save()
        _set_cameras(site, cameras)
    return site


def site_update(site: Site, *, cameras: list[CameraRole] | None = None, **fields) -> Site:
    """Change the fields given (and the cameras, when given)."""
    with transaction.atomic():
        site = Site.objects.select_for_update().get(pk=site.pk)
        before = derivation_inputs(site)
        for name, value in fields.items():
            setattr(site, name, value)
        if "since" in fields and fields["since"] is None:
            site.since = site.created_at  # null means the default: its creation
        site.save()
        if cameras is not None:
            _set_cameras(site, cameras)
        roles_changed(site, before)
    return site


def site_delete(site: Site):
    """The site and its visits (they cascade)."""
    site.delete()


def derivation_inputs(site: Site) -> tuple:
    """What the site's visits depend on, to tell whether an edit changed it."""
    roles = tuple(sorted(SiteCamera.objects.filter(site=site).values_list("camera_id", "role")))
    return tuple(getattr(site, name) for name in Site.DERIVATION_FIELDS) + (roles,)


def roles_changed(site: Site, before: tuple):
    """Bump the revision if what the visits depend on changed since `before`
    (the admin calls this after saving the site and its inline roles)."""
    if derivation_inputs(site) != before:
        Site.objects.filter(pk=site.pk).update(revision=site.revision + 1)
        site.revision += 1


def _set_cameras(site: Site, cameras: list[CameraRole]):
    wanted = {entry.camera.pk: entry.role for entry in cameras}
    current = dict(SiteCamera.objects.filter(site=site).values_list("camera_id", "role"))
    SiteCamera.objects.filter(site=site).exclude(camera_id__in=wanted).delete()
    for camera_id, role in wanted.items():
        if current.get(camera_id) != role:
            SiteCamera.objects.update_or_create(site=site, camera_id=camera_id, defaults={"role": role})
