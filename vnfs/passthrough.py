"""The smallest VNF module: every packet goes on unchanged.

A template to start from, and the benchmark's measure of what scapy alone costs per
packet (parsing the inner packet and building it again).
"""

from scapy.layers.inet import IP

from vnf.scapy_service import Context


def process(pkt: IP, ctx: Context) -> IP:
    return pkt
