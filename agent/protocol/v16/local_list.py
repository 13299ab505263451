"""OCPP 1.6 Local Auth List Management profile: GetLocalListVersion and SendLocalList over the core's list."""

from __future__ import annotations

from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from agent.protocol.v16.codec import id_token_info

NOT_SUPPORTED_VERSION = -1
"""1.6 §5.10: the listVersion of a Charge Point without a (usable) Local Authorization List."""


class LocalListHandlers16:
    """Mixed into the 1.6 adapter: the list is ``self.core.local_list`` (absent or None: not supported)."""

    def _local_list(self):
        """The core's list, or None until the composition root provides one."""
        return self.core.local_list if self.core is not None else None

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self, **_):
        """GetLocalListVersion: 0 = no list installed, -1 = the list is disabled (LocalAuthListEnabled false)."""
        local_list = self._local_list()
        if local_list is None or not local_list.enabled:
            return call_result.GetLocalListVersion(list_version=NOT_SUPPORTED_VERSION)
        return call_result.GetLocalListVersion(list_version=local_list.version)

    @on(Action.send_local_list)
    def on_send_local_list(self, list_version: int, update_type: str,
                           local_authorization_list: list[dict] | None = None, **_):
        """SendLocalList: Full replaces the list; in a Differential update an entry without idTagInfo is removed."""
        local_list = self._local_list()
        if local_list is None:
            return call_result.SendLocalList(status="NotSupported")
        entries = [(item["id_tag"], id_token_info(item.get("id_tag_info")))
                   for item in local_authorization_list or []]
        result = local_list.update(list_version, entries, full=update_type == "Full")
        return call_result.SendLocalList(status=result.value)
