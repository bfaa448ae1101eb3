/*
 * connector.p4 -- the dsfc connector pipeline, P4_16 for the v1model architecture (BMv2).
 *
 * The contract is connector_p4/PIPELINE.md; this program is its reference implementation.
 * The P4Info (connector.p4info.txtpb) is written by hand: every P4Runtime-visible object
 * below carries an explicit @id so that the P4Info p4c generates from this file has the
 * same ids as the hand-written one (tests/unit/test_p4info.py checks names, ids, match
 * fields and action parameters against this source without p4c, and against p4c's own
 * output where p4c is installed).
 *
 * Header stack as emitted by the deparser (each part only when valid):
 *   ethernet / ipv4 / l4 / udp / gpe / nsh / nsh_sp / nsh_ctx / inner_ipv4 / inner_l4
 *   - plain IPv4:                ethernet / ipv4 / l4 (ports of TCP or UDP)
 *   - connector <-> connector:   ethernet / ipv4 / l4 + udp (one UDP header) / gpe / NSH / inner
 *   - connector <-> local VNF:   ethernet (0x894F) / NSH / inner
 * NSH push and pop, VXLAN-GPE encapsulation and decapsulation are done by setting header
 * validity; a packet classified on a host port has its IPv4 header moved to inner_ipv4.
 *
 * instance_select is keyed by (service_id, from_remote): meta.from_remote is 1 only for a
 * packet decapsulated from VXLAN-GPE on the router port (it came from another connector),
 * so the control plane can give remote arrivals a group of local instances only and a
 * flow is never bounced back and forth between connectors (PIPELINE.md, table 3).
 *
 * Differences from the eBPF target that this program cannot avoid (see PIPELINE.md):
 *  - Flow cache: approximated with four register arrays of FLOW_CACHE_SLOTS slots; the
 *    slot of (ctx1, service_id, from_remote) is ctx1[15:0] xor (service_id ++ from_remote
 *    ++ 7w0), so one flow's services never share a slot and flows that differ only in
 *    their ports (CRC-32C is linear: crc16 of ctx1 folds such flows onto a few hundred
 *    slots) spread without collisions; two flows that do collide overwrite each other.
 *    An entry is used while it is idle for less than FLOW_CACHE_IDLE_US and younger than
 *    FLOW_CACHE_MAX_AGE_US and only while (service_id, from_remote) still has a group
 *    (instance_select hits). The data plane
 *    cannot see member ids, so a removed member keeps its cached flows until they expire
 *    (at most FLOW_CACHE_MAX_AGE_US); the eBPF target drops such entries at once.
 *  - member_pkts: the data plane cannot see P4Runtime member ids either. BMv2 counts local
 *    members at index = P4 port (16..511) and remote members at index
 *    512 + crc16(endpoint) % 512. The eBPF server counts at index = member id.
 *  - Flow hash: HashAlgorithm.crc32_custom; the BMv2 launcher must set it to CRC32C
 *    (simple_switch_CLI: set_crc32_parameters <calc> 0x1edc6f41 0xffffffff 0xffffffff
 *    true true, <calc> = the calculation name in the compiled JSON), otherwise ctx1 is a
 *    different (still per-flow) hash than the eBPF classifier's.
 *  - too_big (drop reason 9) is never counted: BMv2 does not know the link MTU.
 *  - Non-chain traffic goes through l2_forward (BMv2 owns its ports; there is no kernel).
 *  - Ports of IPv4 packets with options or fragments are taken as 0 by the classifier.
 */

#include <core.p4>
#include <v1model.p4>

/* ---------------------------------------------------------------- constants */

const bit<16> ETHERTYPE_IPV4 = 0x0800;
const bit<16> ETHERTYPE_ARP  = 0x0806;
const bit<16> ETHERTYPE_IPV6 = 0x86DD;
const bit<16> ETHERTYPE_NSH  = 0x894F;

const bit<8>  IPPROTO_TCP = 6;
const bit<8>  IPPROTO_UDP = 17;
const bit<16> UDP_PORT_GPE = 4790;

const bit<8>  GPE_FLAGS_I_P = 0x0C;   /* I (0x08) + P (0x04) */
const bit<8>  GPE_FLAG_P    = 0x04;
const bit<8>  GPE_NP_NSH    = 4;
const bit<8>  NSH_NP_IPV4   = 1;
const bit<4>  NSH_MD_TYPE_1 = 1;
const bit<6>  NSH_LEN_MD1   = 6;      /* 4-byte words: base + service path + 4 contexts */
const bit<6>  NSH_TTL_INIT  = 63;
const bit<8>  NSH_SI_INIT   = 255;
const bit<16> ENCAP_OVERHEAD_IP  = 60; /* outer IPv4 20 + UDP 8 + GPE 8 + NSH 24 */
const bit<16> ENCAP_OVERHEAD_UDP = 40; /* UDP 8 + GPE 8 + NSH 24 */

/* Port roles (PIPELINE.md "Ports"). */
const bit<9> PORT_ROUTER     = 1;   /* rtr: NSH endpoint, VXLAN-GPE, end-of-chain exit */
const bit<9> PORT_VNF_MIN    = 16;  /* v-<instance>: Ethernet/NSH */
const bit<9> PORT_HOST_MIN   = 64;  /* h-<host>: classifier ingress */

/* Drop reasons = index into Ingress.drops (PIPELINE.md "Counters"). */
const bit<4> DROP_TRUNCATED    = 0;
const bit<4> DROP_BAD_VERSION  = 1;
const bit<4> DROP_BAD_MD_TYPE  = 2;
const bit<4> DROP_TTL_EXPIRED  = 3;
const bit<4> DROP_SI_ZERO      = 4;
const bit<4> DROP_UNKNOWN_PATH = 5;
const bit<4> DROP_NO_INSTANCE  = 6;
const bit<4> DROP_NOT_NSH      = 7;
const bit<4> DROP_BAD_GPE      = 8;
const bit<4> DROP_TOO_BIG      = 9;   /* not used on BMv2, see above */
const bit<4> DROP_POLICY       = 10;

/* What happens to a packet on a chain (meta.fwd). */
const bit<2> FWD_NONE   = 0;
const bit<2> FWD_LOCAL  = 1;
const bit<2> FWD_REMOTE = 2;
const bit<2> FWD_EOC    = 3;

/* Flow cache (registers). Timestamps are BMv2 microseconds. */
const bit<32> FLOW_CACHE_SLOTS      = 65536;   /* = 2^16: indexed by ctx1[15:0] */
const bit<48> FLOW_CACHE_IDLE_US    = 30000000;   /* cache_timeout_s = 30 (PIPELINE.md) */
const bit<48> FLOW_CACHE_MAX_AGE_US = 120000000;

/* ---------------------------------------------------------------- headers */

header ethernet_t {
    bit<48> dstAddr;
    bit<48> srcAddr;
    bit<16> etherType;
}

header ipv4_t {
    bit<4>  version;
    bit<4>  ihl;
    bit<8>  diffserv;
    bit<16> totalLen;
    bit<16> identification;
    bit<3>  flags;
    bit<13> fragOffset;
    bit<8>  ttl;
    bit<8>  protocol;
    bit<16> hdrChecksum;
    bit<32> srcAddr;
    bit<32> dstAddr;
}

/* The first 4 bytes of TCP and UDP. */
header l4_ports_t {
    bit<16> srcPort;
    bit<16> dstPort;
}

/* The rest of a UDP header (only parsed for VXLAN-GPE). */
header udp_rest_t {
    bit<16> length;
    bit<16> checksum;
}

header vxlan_gpe_t {
    bit<8>  flags;
    bit<16> reserved;
    bit<8>  next_protocol;
    bit<24> vni;
    bit<8>  reserved2;
}

/* NSH base header (RFC 8300). */
header nsh_base_t {
    bit<2>  version;
    bit<1>  oam;
    bit<1>  unused1;
    bit<6>  ttl;
    bit<6>  length;
    bit<4>  unused2;
    bit<4>  md_type;
    bit<8>  next_protocol;
}

header nsh_sp_t {
    bit<24> spi;
    bit<8>  si;
}

header nsh_md1_t {
    bit<32> ctx1;   /* flow hash, set by the classifier, never recomputed */
    bit<32> ctx2;
    bit<32> ctx3;
    bit<32> ctx4;
}

struct headers_t {
    ethernet_t  ethernet;
    ipv4_t      ipv4;
    l4_ports_t  l4;
    udp_rest_t  udp;
    vxlan_gpe_t gpe;
    nsh_base_t  nsh;
    nsh_sp_t    nsh_sp;
    nsh_md1_t   nsh_ctx;
    ipv4_t      inner_ipv4;
    l4_ports_t  inner_l4;
}

struct metadata_t {
    bit<24> spi;
    bit<8>  si;
    bit<8>  service_id;
    bit<1>  from_remote;   /* 1: decapsulated from VXLAN-GPE on the router port */
    bit<32> flow_hash;
    bit<16> l4_src;
    bit<16> l4_dst;
    bit<32> local_ip;
    bit<48> router_mac;
    bit<48> local_mac;
    bit<1>  on_chain;
    bit<1>  to_service;
    bit<2>  fwd;
    bit<9>  out_port;
    bit<48> dmac;
    bit<32> endpoint;
    bit<1>  drop;
    bit<4>  drop_reason;
    bit<1>  new_outer;
}

/* ---------------------------------------------------------------- parser */

parser ConnectorParser(packet_in packet,
                       out headers_t hdr,
                       inout metadata_t meta,
                       inout standard_metadata_t standard_metadata) {
    state start {
        packet.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) {
            ETHERTYPE_IPV4: parse_ipv4;
            ETHERTYPE_NSH: parse_nsh;
            default: accept;
        }
    }

    state parse_ipv4 {
        packet.extract(hdr.ipv4);
        transition select(hdr.ipv4.ihl, hdr.ipv4.fragOffset, hdr.ipv4.protocol) {
            (4w5, 13w0, IPPROTO_TCP): parse_l4;
            (4w5, 13w0, IPPROTO_UDP): parse_l4;
            default: accept;
        }
    }

    state parse_l4 {
        packet.extract(hdr.l4);
        /* VXLAN-GPE is only looked for on the router port. */
        transition select(standard_metadata.ingress_port, hdr.ipv4.protocol, hdr.l4.dstPort) {
            (PORT_ROUTER, IPPROTO_UDP, UDP_PORT_GPE): parse_gpe;
            default: accept;
        }
    }

    state parse_gpe {
        packet.extract(hdr.udp);
        packet.extract(hdr.gpe);
        transition select(hdr.gpe.next_protocol) {
            GPE_NP_NSH: parse_nsh;
            default: accept;
        }
    }

    /* Always 24 bytes (base, service path, MD type 1 context), so that a short NSH packet
     * is `truncated` whatever its version or MD type; ingress checks those next. */
    state parse_nsh {
        packet.extract(hdr.nsh);
        packet.extract(hdr.nsh_sp);
        packet.extract(hdr.nsh_ctx);
        transition select(hdr.nsh.version, hdr.nsh.md_type, hdr.nsh.length,
                          hdr.nsh.next_protocol) {
            (2w0, NSH_MD_TYPE_1, NSH_LEN_MD1, NSH_NP_IPV4): parse_inner_ipv4;
            default: accept;
        }
    }

    state parse_inner_ipv4 {
        packet.extract(hdr.inner_ipv4);
        transition select(hdr.inner_ipv4.ihl, hdr.inner_ipv4.fragOffset,
                          hdr.inner_ipv4.protocol) {
            (4w5, 13w0, IPPROTO_TCP): parse_inner_l4;
            (4w5, 13w0, IPPROTO_UDP): parse_inner_l4;
            default: accept;
        }
    }

    state parse_inner_l4 {
        packet.extract(hdr.inner_l4);
        transition accept;
    }
}

control ConnectorVerifyChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

/* ---------------------------------------------------------------- ingress */

control ConnectorIngress(inout headers_t hdr,
                inout metadata_t meta,
                inout standard_metadata_t standard_metadata) {

    /* Counters (indirect, packets and bytes). */
    @id(0x12000001) @name(".Ingress.member_pkts")
    counter(32w1024, CounterType.packets_and_bytes) member_pkts;
    @id(0x12000002) @name(".Ingress.drops")
    counter(32w16, CounterType.packets_and_bytes) drops;
    @id(0x12000003) @name(".Ingress.classified")
    counter(32w1, CounterType.packets_and_bytes) classified;
    /* Same control-plane name as the action end_of_chain (a different P4Info type). */
    @id(0x12000004) @name(".Ingress.end_of_chain")
    counter(32w1, CounterType.packets_and_bytes) end_of_chain_pkts;

    /* Flow cache: (ctx1, service_id, from_remote) -> forwarding decision (see the header
     * comment). The key register holds ctx1 ++ service_id ++ from_remote. */
    @id(0x16000001) @name(".Ingress.flow_cache_key")
    register<bit<41>>(FLOW_CACHE_SLOTS) flow_cache_key;
    @id(0x16000002) @name(".Ingress.flow_cache_val")
    register<bit<96>>(FLOW_CACHE_SLOTS) flow_cache_val;
    @id(0x16000003) @name(".Ingress.flow_cache_seen")
    register<bit<48>>(FLOW_CACHE_SLOTS) flow_cache_seen;
    @id(0x16000004) @name(".Ingress.flow_cache_born")
    register<bit<48>>(FLOW_CACHE_SLOTS) flow_cache_born;

    /* WCMP: members are to_local_vnf / to_remote, one group per (service, from_remote). */
    @id(0x11000001) @name(".Ingress.instance_selector") @max_group_size(64)
    action_selector(HashAlgorithm.identity, 32w1024, 32w32) instance_selector;

    /* ------------------------------------------------------------ actions */

    @id(0x01000001) @name(".Ingress.set_chain")
    action set_chain(bit<24> spi) {
        /* ctx1 = crc32c over src . dst . proto . sport . dport (13 bytes). */
        hash(meta.flow_hash, HashAlgorithm.crc32_custom, 32w0,
             { hdr.ipv4.srcAddr, hdr.ipv4.dstAddr, hdr.ipv4.protocol,
               meta.l4_src, meta.l4_dst },
             33w0x100000000);
        /* Push NSH: the packet's IPv4 header becomes the inner one. */
        hdr.inner_ipv4 = hdr.ipv4;
        hdr.inner_l4 = hdr.l4;
        hdr.ipv4.setInvalid();
        hdr.l4.setInvalid();
        hdr.nsh.setValid();
        hdr.nsh.version = 0;
        hdr.nsh.oam = 0;
        hdr.nsh.unused1 = 0;
        hdr.nsh.ttl = NSH_TTL_INIT;
        hdr.nsh.length = NSH_LEN_MD1;
        hdr.nsh.unused2 = 0;
        hdr.nsh.md_type = NSH_MD_TYPE_1;
        hdr.nsh.next_protocol = NSH_NP_IPV4;
        hdr.nsh_sp.setValid();
        hdr.nsh_sp.spi = spi;
        hdr.nsh_sp.si = NSH_SI_INIT;
        hdr.nsh_ctx.setValid();
        hdr.nsh_ctx.ctx1 = meta.flow_hash;
        hdr.nsh_ctx.ctx2 = 0;
        hdr.nsh_ctx.ctx3 = 0;
        hdr.nsh_ctx.ctx4 = 0;
        meta.on_chain = 1;
        classified.count(32w0);
    }

    @id(0x01000002) @name(".Ingress.to_service")
    action to_service(bit<8> service_id) {
        meta.service_id = service_id;
        meta.to_service = 1;
    }

    @id(0x01000003) @name(".Ingress.end_of_chain")
    action end_of_chain() {
        meta.fwd = FWD_EOC;
    }

    /* Explicit drop; a miss in sff_next re-labels the reason as unknown_path. */
    @id(0x01000004) @name(".Ingress.drop_packet")
    action drop_packet() {
        meta.drop = 1;
        meta.drop_reason = DROP_POLICY;
    }

    @id(0x01000005) @name(".Ingress.to_local_vnf")
    action to_local_vnf(bit<9> port, bit<48> dmac) {
        meta.fwd = FWD_LOCAL;
        meta.out_port = port;
        meta.dmac = dmac;
    }

    @id(0x01000006) @name(".Ingress.to_remote")
    action to_remote(bit<32> endpoint) {
        meta.fwd = FWD_REMOTE;
        meta.endpoint = endpoint;
    }

    @id(0x01000007) @name(".Ingress.set_config")
    action set_config(bit<32> local_ip, bit<48> router_mac, bit<48> local_mac) {
        meta.local_ip = local_ip;
        meta.router_mac = router_mac;
        meta.local_mac = local_mac;
    }

    @id(0x01000008) @name(".Ingress.l2_out")
    action l2_out(bit<9> port) {
        standard_metadata.egress_spec = port;
    }

    @id(0x01000009) @name(".Ingress.l2_multicast")
    action l2_multicast(bit<16> group) {
        standard_metadata.mcast_grp = group;
    }

    /* ------------------------------------------------------------ tables */

    @id(0x02000001) @name(".Ingress.classifier")
    table classifier {
        key = {
            hdr.ipv4.srcAddr  : ternary;
            hdr.ipv4.dstAddr  : ternary;
            hdr.ipv4.protocol : ternary;
            meta.l4_src       : ternary;
            meta.l4_dst       : ternary;
        }
        actions = {
            set_chain;
            @defaultonly NoAction;
        }
        const default_action = NoAction();
        size = 64;
    }

    @id(0x02000002) @name(".Ingress.sff_next")
    table sff_next {
        key = {
            meta.spi : exact;
            meta.si  : exact;
        }
        actions = {
            to_service;
            end_of_chain;
            drop_packet;
        }
        const default_action = drop_packet();
        size = 4096;
    }

    @id(0x02000003) @name(".Ingress.instance_select")
    table instance_select {
        key = {
            meta.service_id  : exact;
            meta.from_remote : exact;
            meta.flow_hash   : selector;
        }
        actions = {
            to_local_vnf;
            to_remote;
            @defaultonly NoAction;
        }
        const default_action = NoAction();
        implementation = instance_selector;
        size = 512;   /* 256 services x from_remote 0/1 */
    }

    @id(0x02000004) @name(".Ingress.sff_config")
    table sff_config {
        actions = {
            set_config;
        }
        default_action = set_config(32w0, 48w0, 48w0);
    }

    /* BMv2 only: what the kernel bridge does on the eBPF target. */
    @id(0x02000005) @name(".Ingress.l2_forward")
    table l2_forward {
        key = {
            standard_metadata.ingress_port : ternary;
            hdr.ethernet.dstAddr           : ternary;
        }
        actions = {
            l2_out;
            l2_multicast;
            drop_packet;
            @defaultonly NoAction;
        }
        default_action = NoAction();
        size = 1024;
    }

    /* ------------------------------------------------------------ apply */

    apply {
        meta.on_chain = 0;
        meta.to_service = 0;
        meta.fwd = FWD_NONE;
        meta.drop = 0;
        meta.drop_reason = 0;
        meta.new_outer = 0;
        meta.from_remote = 0;
        meta.l4_src = 0;
        meta.l4_dst = 0;

        sff_config.apply();

        bool truncated = standard_metadata.parser_error != error.NoError;
        bool nsh_in = false;     /* an NSH packet arrived (from a VNF or decapsulated) */

        if (standard_metadata.ingress_port >= PORT_HOST_MIN) {
            /* Host port: classify plain IPv4. */
            if (hdr.ipv4.isValid() && !truncated) {
                if (hdr.l4.isValid()) {
                    meta.l4_src = hdr.l4.srcPort;
                    meta.l4_dst = hdr.l4.dstPort;
                }
                classifier.apply();
            }
        } else if (standard_metadata.ingress_port >= PORT_VNF_MIN) {
            /* VNF port: NSH only; ARP and IPv6 (ND) go the l2 way, the rest is dropped. */
            if (hdr.ethernet.etherType == ETHERTYPE_NSH) {
                nsh_in = true;
            } else if (hdr.ethernet.etherType != ETHERTYPE_ARP &&
                       hdr.ethernet.etherType != ETHERTYPE_IPV6) {
                meta.drop = 1;
                meta.drop_reason = DROP_NOT_NSH;
            }
        } else if (standard_metadata.ingress_port == PORT_ROUTER) {
            /* Router port: VXLAN-GPE to our NSH endpoint; anything else goes the l2 way. */
            if (hdr.ipv4.isValid() && hdr.l4.isValid() &&
                hdr.ipv4.protocol == IPPROTO_UDP && hdr.l4.dstPort == UDP_PORT_GPE &&
                hdr.ipv4.dstAddr == meta.local_ip) {
                if (truncated || !hdr.gpe.isValid()) {
                    meta.drop = 1;
                    meta.drop_reason = DROP_TRUNCATED;
                } else if ((hdr.gpe.flags & GPE_FLAG_P) == 0 ||
                           hdr.gpe.next_protocol != GPE_NP_NSH) {
                    meta.drop = 1;
                    meta.drop_reason = DROP_BAD_GPE;
                } else {
                    /* Decapsulate: NSH follows Ethernet from here on. */
                    hdr.ipv4.setInvalid();
                    hdr.l4.setInvalid();
                    hdr.udp.setInvalid();
                    hdr.gpe.setInvalid();
                    hdr.ethernet.etherType = ETHERTYPE_NSH;
                    meta.from_remote = 1;   /* instance_select: keep the sender's choice */
                    nsh_in = true;
                }
            }
        }

        if (nsh_in) {
            meta.on_chain = 1;
            /* PIPELINE.md "NSH checks", in its order. */
            if (truncated || !hdr.nsh_ctx.isValid()) {
                meta.drop = 1;
                meta.drop_reason = DROP_TRUNCATED;   /* < 24 bytes, or < 20 bytes of IPv4 */
            } else if (hdr.nsh.version != 0) {
                meta.drop = 1;
                meta.drop_reason = DROP_BAD_VERSION;
            } else if (hdr.nsh.md_type != NSH_MD_TYPE_1 || hdr.nsh.length != NSH_LEN_MD1 ||
                       hdr.nsh.next_protocol != NSH_NP_IPV4) {
                meta.drop = 1;
                meta.drop_reason = DROP_BAD_MD_TYPE;
            } else if (hdr.nsh.ttl <= 1) {
                meta.drop = 1;
                meta.drop_reason = DROP_TTL_EXPIRED;
            } else {
                hdr.nsh.ttl = hdr.nsh.ttl - 1;
                if (hdr.nsh_sp.si == 0) {
                    meta.drop = 1;
                    meta.drop_reason = DROP_SI_ZERO;
                }
            }
        }

        /* Step S: service function forwarding. */
        if (meta.on_chain == 1 && meta.drop == 0) {
            meta.spi = hdr.nsh_sp.spi;
            meta.si = hdr.nsh_sp.si;
            meta.flow_hash = hdr.nsh_ctx.ctx1;
            if (!sff_next.apply().hit) {
                meta.drop_reason = DROP_UNKNOWN_PATH;   /* default drop_packet() set drop */
            }
            if (meta.drop == 0 && meta.to_service == 1) {
                instance_select.apply();
                if (meta.fwd == FWD_NONE) {
                    meta.drop = 1;
                    meta.drop_reason = DROP_NO_INSTANCE;
                } else {
                    /* Flow cache: keep an existing flow on its instance. */
                    bit<32> slot = (bit<32>)(meta.flow_hash[15:0] ^
                                             (meta.service_id ++ meta.from_remote ++ 7w0));
                    bit<41> key_now = meta.flow_hash ++ meta.service_id ++ meta.from_remote;
                    bit<41> key_old;
                    bit<96> val_old;
                    bit<48> seen;
                    bit<48> born;
                    flow_cache_key.read(key_old, slot);
                    flow_cache_val.read(val_old, slot);
                    flow_cache_seen.read(seen, slot);
                    flow_cache_born.read(born, slot);
                    bit<48> now = standard_metadata.ingress_global_timestamp;
                    if (key_old == key_now && val_old[90:89] != FWD_NONE &&
                        now - seen < FLOW_CACHE_IDLE_US &&
                        now - born < FLOW_CACHE_MAX_AGE_US) {
                        meta.fwd = val_old[90:89];
                        meta.out_port = val_old[88:80];
                        meta.dmac = val_old[79:32];
                        meta.endpoint = val_old[31:0];
                    } else {
                        flow_cache_key.write(slot, key_now);
                        flow_cache_val.write(slot, 5w0 ++ meta.fwd ++ meta.out_port ++
                                                   meta.dmac ++ meta.endpoint);
                        flow_cache_born.write(slot, now);
                    }
                    flow_cache_seen.write(slot, now);
                }
            }
        }

        /* Output. */
        if (meta.drop == 1) {
            drops.count((bit<32>)meta.drop_reason);
            mark_to_drop(standard_metadata);
        } else if (meta.fwd == FWD_LOCAL) {
            /* Ethernet(dmac, our MAC, 0x894F) / NSH to a local VNF. */
            hdr.ethernet.dstAddr = meta.dmac;
            hdr.ethernet.srcAddr = meta.local_mac;
            hdr.ethernet.etherType = ETHERTYPE_NSH;
            standard_metadata.egress_spec = meta.out_port;
            member_pkts.count((bit<32>)meta.out_port);
        } else if (meta.fwd == FWD_REMOTE) {
            /* Ethernet / IPv4 / UDP / VXLAN-GPE / NSH to the next connector via the router. */
            hdr.ethernet.dstAddr = meta.router_mac;
            hdr.ethernet.srcAddr = meta.local_mac;
            hdr.ethernet.etherType = ETHERTYPE_IPV4;
            hdr.ipv4.setValid();
            hdr.ipv4.version = 4;
            hdr.ipv4.ihl = 5;
            hdr.ipv4.diffserv = 0;
            hdr.ipv4.totalLen = hdr.inner_ipv4.totalLen + ENCAP_OVERHEAD_IP;
            hdr.ipv4.identification = 0;
            hdr.ipv4.flags = 3w0b010;   /* DF */
            hdr.ipv4.fragOffset = 0;
            hdr.ipv4.ttl = 64;
            hdr.ipv4.protocol = IPPROTO_UDP;
            hdr.ipv4.hdrChecksum = 0;
            hdr.ipv4.srcAddr = meta.local_ip;
            hdr.ipv4.dstAddr = meta.endpoint;
            hdr.l4.setValid();
            hdr.l4.srcPort = 2w0b11 ++ meta.flow_hash[13:0];   /* 49152 | (ctx1 & 0x3fff) */
            hdr.l4.dstPort = UDP_PORT_GPE;
            hdr.udp.setValid();
            hdr.udp.length = hdr.inner_ipv4.totalLen + ENCAP_OVERHEAD_UDP;
            hdr.udp.checksum = 0;
            hdr.gpe.setValid();
            hdr.gpe.flags = GPE_FLAGS_I_P;
            hdr.gpe.reserved = 0;
            hdr.gpe.next_protocol = GPE_NP_NSH;
            hdr.gpe.vni = 0;
            hdr.gpe.reserved2 = 0;
            meta.new_outer = 1;
            standard_metadata.egress_spec = PORT_ROUTER;
            bit<32> remote_index;
            hash(remote_index, HashAlgorithm.crc16, 32w512, { meta.endpoint }, 32w512);
            member_pkts.count(remote_index);
        } else if (meta.fwd == FWD_EOC) {
            /* Strip NSH, hand the inner IPv4 packet to the router. */
            hdr.nsh.setInvalid();
            hdr.nsh_sp.setInvalid();
            hdr.nsh_ctx.setInvalid();
            hdr.ethernet.dstAddr = meta.router_mac;
            hdr.ethernet.srcAddr = meta.local_mac;
            hdr.ethernet.etherType = ETHERTYPE_IPV4;
            standard_metadata.egress_spec = PORT_ROUTER;
            end_of_chain_pkts.count(32w0);
        } else if (meta.on_chain == 0) {
            /* Not ours: what the kernel would do on the eBPF target. */
            if (!l2_forward.apply().hit) {
                mark_to_drop(standard_metadata);
            } else if (meta.drop == 1) {
                drops.count((bit<32>)meta.drop_reason);
                mark_to_drop(standard_metadata);
            }
        } else {
            mark_to_drop(standard_metadata);
        }
    }
}

/* ---------------------------------------------------------------- egress */

control ConnectorEgress(inout headers_t hdr,
               inout metadata_t meta,
               inout standard_metadata_t standard_metadata) {
    apply {
        /* l2_multicast copies never go back out of the port they came in on. */
        if (standard_metadata.mcast_grp != 0 &&
            standard_metadata.egress_port == standard_metadata.ingress_port) {
            mark_to_drop(standard_metadata);
        }
    }
}

control ConnectorComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply {
        /* Only the outer IPv4 header we build; forwarded headers keep their checksum. */
        update_checksum(
            hdr.ipv4.isValid() && meta.new_outer == 1,
            { hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.diffserv, hdr.ipv4.totalLen,
              hdr.ipv4.identification, hdr.ipv4.flags, hdr.ipv4.fragOffset, hdr.ipv4.ttl,
              hdr.ipv4.protocol, hdr.ipv4.srcAddr, hdr.ipv4.dstAddr },
            hdr.ipv4.hdrChecksum,
            HashAlgorithm.csum16);
    }
}

control ConnectorDeparser(packet_out packet, in headers_t hdr) {
    apply {
        packet.emit(hdr.ethernet);
        packet.emit(hdr.ipv4);
        packet.emit(hdr.l4);
        packet.emit(hdr.udp);
        packet.emit(hdr.gpe);
        packet.emit(hdr.nsh);
        packet.emit(hdr.nsh_sp);
        packet.emit(hdr.nsh_ctx);
        packet.emit(hdr.inner_ipv4);
        packet.emit(hdr.inner_l4);
    }
}

V1Switch(ConnectorParser(),
         ConnectorVerifyChecksum(),
         ConnectorIngress(),
         ConnectorEgress(),
         ConnectorComputeChecksum(),
         ConnectorDeparser()) main;
