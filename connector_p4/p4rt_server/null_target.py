"""``--target null``: a target without a data plane (dry runs, demos)."""

from __future__ import annotations

import logging

from connector_p4.target import ClassifierRule, ConnectorConfig, Counter, Member, SffAction

log = logging.getLogger("connector_p4.p4rt_server")


class NullTarget:
    """Accepts every write (logged at debug level) and counts nothing."""

    def set_config(self, cfg: ConnectorConfig) -> None:
        log.debug("null target: set_config %s", cfg)

    def set_classifier(self, rules: list[ClassifierRule]) -> None:
        log.debug("null target: set_classifier (%d rules)", len(rules))

    def set_sff(self, spi: int, si: int, action: SffAction) -> None:
        log.debug("null target: set_sff %d %d %s", spi, si, action)

    def delete_sff(self, spi: int, si: int) -> None:
        log.debug("null target: delete_sff %d %d", spi, si)

    def set_member(self, member_id: int, member: Member) -> None:
        log.debug("null target: set_member %d %s", member_id, member)

    def delete_member(self, member_id: int) -> None:
        log.debug("null target: delete_member %d", member_id)

    def set_group(self, slot: int, members: list[tuple[int, int]]) -> None:
        log.debug("null target: set_group %d %s", slot, members)

    def delete_group(self, slot: int) -> None:
        log.debug("null target: delete_group %d", slot)

    def member_counters(self) -> dict[int, Counter]:
        return {}

    def drop_counters(self) -> dict[str, Counter]:
        return {}

    def misc_counters(self) -> dict[str, Counter]:
        return {}

    def close(self) -> None:
        log.debug("null target: close")
