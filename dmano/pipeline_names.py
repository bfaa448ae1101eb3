"""The P4Runtime names of the connector pipeline's objects (connector_p4/PIPELINE.md):
the one place the D-MANO's client, the P4Runtime server and the BMv2 setup take them
from (their ids always come from the served P4Info)."""

from __future__ import annotations

T_CLASSIFIER = "Ingress.classifier"
T_SFF = "Ingress.sff_next"
T_SELECT = "Ingress.instance_select"
T_CONFIG = "Ingress.sff_config"
T_L2 = "Ingress.l2_forward"
A_SET_CHAIN = "Ingress.set_chain"
A_TO_SERVICE = "Ingress.to_service"
A_END_OF_CHAIN = "Ingress.end_of_chain"
A_DROP = "Ingress.drop_packet"
A_LOCAL = "Ingress.to_local_vnf"
A_REMOTE = "Ingress.to_remote"
A_SET_CONFIG = "Ingress.set_config"
A_L2_OUT = "Ingress.l2_out"
A_L2_MULTICAST = "Ingress.l2_multicast"
A_NOACTION = "NoAction"
P_SELECTOR = "Ingress.instance_selector"
C_MEMBERS = "Ingress.member_pkts"
C_DROPS = "Ingress.drops"
C_CLASSIFIED = "Ingress.classified"
C_EOC = "Ingress.end_of_chain"
CLASSIFIER_FIELDS = ("hdr.ipv4.srcAddr", "hdr.ipv4.dstAddr", "hdr.ipv4.protocol",
                     "meta.l4_src", "meta.l4_dst")
SFF_FIELDS = ("meta.spi", "meta.si")
SELECT_FIELDS = ("meta.service_id", "meta.from_remote")
