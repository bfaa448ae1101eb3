"""dsfc: the VNF process (``python -m vnf``), one per instance.

NSH in (Ethernet 0x894F on its interface), service work, SI-1, NSH back out to the
connector; counters written as JSON for the D-MANO monitor.

Modules: :mod:`vnf.fastpath` (per-frame work on bytes, drop reasons),
:mod:`vnf.services` (passthrough, firewall, ids: flags and may reclassify flows to
another chain), :mod:`vnf.dpi` (payload patterns), :mod:`vnf.rules` (the rule syntax),
:mod:`vnf.scapy_service` (service ``scapy``: a user's Python module gets each inner
packet as a scapy object; imports scapy), :mod:`vnf.usermodule` (loading and checking
such modules, their errors),
:mod:`vnf.packetio` (AF_PACKET socket,
batched recvmmsg/sendmmsg loop), :mod:`vnf.stats` (the stats file and its format),
:mod:`vnf.config` (options and YAML file), :mod:`vnf.cli` (the program).
"""
