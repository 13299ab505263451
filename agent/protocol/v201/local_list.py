"""OCPP 2.0.1 local authorization list (D01 SendLocalList, D02 GetLocalListVersion) over the core's list."""

from __future__ import annotations

from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from agent.protocol.v201.codec import id_token_info


class LocalListHandlers201:
    """Mixed into the 2.0.1 adapter: the list is ``self.core.local_list`` (absent or None: not supported).

    Entries are keyed by idToken and type, as 2.0.1 identifies a token by both.
    """

    def _local_list(self):
        """The core's list, or None until the composition root provides one."""
        return self.core.local_list if self.core is not None else None

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self, **_):
        """GetLocalListVersion: the installed list's version, 0 when there is none (2.0.1 has no -1)."""
        local_list = self._local_list()
        return call_result.GetLocalListVersion(version_number=local_list.version if local_list is not None else 0)

    @on(Action.send_local_list)
    def on_send_local_list(self, version_number: int, update_type: str,
                           local_authorization_list: list[dict] | None = None, **_):
        """SendLocalList: Full replaces the list; in a Differential update an entry without idTokenInfo is removed."""
        local_list = self._local_list()
        if local_list is None or not local_list.enabled:
            # 2.0.1 has no NotSupported: Failed, with the reason for the CSMS's operator.
            return call_result.SendLocalList(status="Failed", status_info={"reason_code": "LocalListDisabled"})
        entries = [(item["id_token"]["id_token"], id_token_info(item.get("id_token_info")), item["id_token"]["type"])
                   for item in local_authorization_list or []]
        result = local_list.update(version_number, entries, full=update_type == "Full")
        return call_result.SendLocalList(status=result.value)
