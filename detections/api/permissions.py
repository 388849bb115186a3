"""What each kind of caller may do on the API (protocol.md, "Who may do what");
the rules the feed shares live in detections/core/access.py.

Edge units (device keys) write; viewers (users) read; staff with the
`delete_detection` permission delete, with `change_detection` correct a plate. An operator may open reading to anyone
with PUBLIC_FEED=true. Without credentials the answer is 401, with the wrong
kind 403.
"""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from detections.core.access import Device, is_viewer, may_view, may_view_alerts, may_view_journeys, may_view_visits


class IsDevice(BasePermission):
    message = "Only an edge unit's device key may post detections."
    admits_devices = True  # so its requests count against the key's rate (a 429 in the schema)

    def has_permission(self, request, view):
        return isinstance(request.user, Device)


class CanView(BasePermission):
    message = "Reading needs a viewer account (a user token or a session)."
    admits_devices = True  # with PUBLIC_FEED

    def has_permission(self, request, view):
        return request.method in SAFE_METHODS and may_view(request.user)


class CanDelete(BasePermission):
    message = "Deleting needs the 'delete detection' permission (staff)."

    def has_permission(self, request, view):
        return is_viewer(request.user) and request.user.has_perm("detections.delete_detection")


class HasModelPermission(BasePermission):
    """A user (never a device, never anonymous, whatever PUBLIC_FEED says) who
    holds `permission`."""

    permission = ""

    def has_permission(self, request, view):
        return is_viewer(request.user) and request.user.has_perm(self.permission)


class CanCorrect(HasModelPermission):
    permission = "detections.change_detection"
    message = "Correcting a read needs the 'change detection' permission (staff)."


class CanManageWatchlists(HasModelPermission):
    permission = "detections.manage_watchlists"
    message = "Watch-lists and alert rules need the 'manage watchlists' permission."


class CanViewAlerts(BasePermission):
    message = "Alerts need the 'view alert' permission."

    def has_permission(self, request, view):
        return may_view_alerts(request.user)


class CanManageWebhooks(HasModelPermission):
    permission = "detections.manage_webhooks"
    message = "Webhooks need the 'manage webhooks' permission."


class CanManageSites(BasePermission):
    """Reading sites and their visits needs 'view visit'; changing sites, 'manage sites'."""

    message = "Sites need the 'manage sites' permission to change, and 'view visit' to read."

    def has_permission(self, request, view):
        if request.method in SAFE_METHODS:
            return may_view_visits(request.user)
        return is_viewer(request.user) and request.user.has_perm("detections.manage_sites")


class CanViewVisits(BasePermission):
    message = "Visits need the 'view visit' permission."

    def has_permission(self, request, view):
        return request.method in SAFE_METHODS and may_view_visits(request.user)


class CanManageRoutes(BasePermission):
    """Reading routes needs 'view journey'; changing them, 'manage routes'."""

    message = "Routes need the 'manage routes' permission to change, and 'view journey' to read."

    def has_permission(self, request, view):
        if request.method in SAFE_METHODS:
            return may_view_journeys(request.user)
        return is_viewer(request.user) and request.user.has_perm("detections.manage_routes")


class CanViewJourneys(BasePermission):
    message = "Journeys, travel times and the matrix need the 'view journey' permission."

    def has_permission(self, request, view):
        return request.method in SAFE_METHODS and may_view_journeys(request.user)
