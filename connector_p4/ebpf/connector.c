// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only
/*
 * dsfc connector pipeline in eBPF (tc clsact ingress, direct-action).
 *
 * The contract is ../PIPELINE.md; the P4 reference is ../connector.p4. One program is
 * attached to the ingress of every connector port. The port's role and P4 port number
 * come from the `ports` map, keyed by the ingress ifindex (skb->ingress_ifindex, which
 * on tc ingress equals the device's ifindex and which BPF_PROG_TEST_RUN lets a test set).
 *
 * Map layouts are mirrored in ../ebpf_target.py; keep both in step. All integers in
 * map values are host byte order; MAC addresses are 6 raw bytes.
 *
 * instance_select is keyed by (service id, from_remote): `groups` is indexed by the select
 * slot = service id + 256 * from_remote, where from_remote is 1 only for a packet
 * decapsulated from VXLAN-GPE on the router port. The control plane gives slot 256 + S the
 * local instances of S only, so a flow sent here by another connector stays here.
 *
 * Verifier notes (DESIGN.md section 7):
 *  - header fields are read with bpf_skb_load_bytes() into naturally aligned __u32
 *    arrays, never into packed structs on the stack;
 *  - `hash % n` gets an empty asm barrier and a mask so the bound survives clang;
 *  - bpf_skb_adjust_room() refuses non-IP skbs (ethertype 0x894F from a VNF): the NSH
 *    strip for end_of_chain of such packets moves the payload in 256-byte chunks and
 *    trims the tail (move_payload); growing always uses bpf_skb_change_head();
 *  - no direct packet pointers are kept across helpers that change the packet.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_HLEN_ 14
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP 0x0806
#define ETHERTYPE_IPV6 0x86DD
#define ETHERTYPE_NSH 0x894F
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_ICMPV6_ 58
#define GPE_PORT 4790
#define NSH_LEN 24                       /* MD type 1: base + service path + 4 ctx */
#define GPE_ENCAP_LEN (20 + 8 + 8)       /* outer IPv4 + UDP + VXLAN-GPE */
#define NSH_INITIAL_TTL 63
#define NSH_INITIAL_SI 255
/* ver 0, O 0, ttl 63, length 6, md type 1, next protocol 1 (IPv4) */
#define NSH_BASE_INITIAL ((NSH_INITIAL_TTL << 22) | (6 << 16) | (1 << 8) | 1)
#define NSEC_PER_MSEC 1000000ULL

#define MAX_PORTS 512                    /* bit<9> P4 port numbers */
#define MAX_RULES 64
#define MAX_SFF 4096
#define MAX_SERVICES 256
#define SELECT_SLOTS (2 * MAX_SERVICES)  /* groups: service id + 256 * from_remote */
#define MAX_MEMBERS 1024
#define GROUP_SLOTS 64
#define FLOW_CACHE_SIZE 65536
#define N_DROP_REASONS 16
#define CHUNK 256                        /* move_payload() copy unit */
#define MAX_CHUNKS 40                    /* longest payload it moves: 10240 bytes */

enum role { ROLE_ROUTER = 1, ROLE_HOSTBRIDGE = 2, ROLE_VNF = 3, ROLE_HOST = 4 };

enum drop_reason {
	DR_TRUNCATED = 0, DR_BAD_VERSION = 1, DR_BAD_MD_TYPE = 2, DR_TTL_EXPIRED = 3,
	DR_SI_ZERO = 4, DR_UNKNOWN_PATH = 5, DR_NO_INSTANCE = 6, DR_NOT_NSH = 7,
	DR_BAD_GPE = 8, DR_TOO_BIG = 9, DR_POLICY_DROP = 10,
};

enum sff_kind { SFF_TO_SERVICE = 1, SFF_END_OF_CHAIN = 2, SFF_DROP = 3 };
enum member_kind { MEMBER_NONE = 0, MEMBER_LOCAL = 1, MEMBER_REMOTE = 2 };
enum misc_counter { MISC_CLASSIFIED = 0, MISC_END_OF_CHAIN = 1 };

/* parse results */
#define NEXT 0
#define PASS 1
#define DROP(r) (0x100 | (r))
#define NO_MEMBER 0xffffffffu

/* ---- map values (mirrored in ebpf_target.py) ---- */

struct port_info {          /* `ports` (key: ifindex) and `p4ports` (key: P4 port) */
	__u32 ifindex;
	__u32 p4port;
	__u32 role;
	__u32 mtu;              /* L3 MTU of the device, 0 = not checked */
	__u8 mac[6];
	__u8 pad[2];
};

struct config {
	__u32 local_ip;         /* NSH endpoint address of this connector */
	__u32 router_ifindex;   /* ifindex of P4 port 1 */
	__u32 router_mtu;       /* its L3 MTU, 0 = not checked */
	__u32 cache_timeout_ms; /* flow cache idle timeout, 0 = flow cache off */
	__u8 router_mac[6];
	__u8 local_mac[6];      /* MAC of P4 port 1 */
	__u32 valid;            /* set_config() was called */
};

struct cls_rule {
	__u32 src, src_mask;
	__u32 dst, dst_mask;
	__u16 sport, sport_mask;
	__u16 dport, dport_mask;
	__u8 proto, proto_mask;
	__u8 pad[2];
	__u32 priority;         /* informational: rules are stored highest first */
	__u32 spi;
};

struct cls_bank {           /* two banks; `cls_active` names the live one */
	__u32 count;
	__u32 pad;
	struct cls_rule rules[MAX_RULES];
};

struct sff_action {
	__u32 kind;             /* enum sff_kind */
	__u32 service_id;
};

struct member {
	__u32 kind;             /* enum member_kind */
	__u32 port;             /* P4 port (local) */
	__u32 endpoint;         /* remote connector's NSH endpoint (remote) */
	__u8 dmac[6];           /* VNF MAC (local) */
	__u8 pad[2];
};

struct group {
	__u32 n_slots;          /* sum of weights (<= 64); 0 = no usable member */
	__u16 n_members;
	__u16 present;          /* 1 if the group exists (read-back only) */
	__u16 slots[GROUP_SLOTS];      /* slot j = expansion[j % n_slots] */
	__u16 member_ids[GROUP_SLOTS]; /* as written, for read-back */
	__u8 weights[GROUP_SLOTS];
	__u64 bits[MAX_MEMBERS / 64];  /* membership bitmap for flow-cache validation */
};

struct fc_key {
	__u32 hash;             /* ctx1 */
	__u32 slot;             /* select slot: service id + 256 * from_remote */
};

struct fc_val {
	__u64 last_ns;          /* bpf_ktime_get_ns() of last use (refreshed every timeout/8) */
	__u32 member;
	__u32 pad;
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct dbg_rec {            /* last decision on this CPU (see ebpf_target.last_decision) */
	__u32 ingress_ifindex;
	__u32 verdict;          /* TC_ACT_* returned */
	__u32 egress_ifindex;   /* bpf_redirect() target, 0 if none */
	__u32 member;           /* selected member id, NO_MEMBER if none */
	__u32 drop_reason;      /* 0xffffffff if not dropped */
	__u32 seq;              /* bumped on every decision */
};

/* ---- maps ---- */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u32);
	__type(value, struct port_info);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u32);
	__type(value, struct port_info);
} p4ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct cls_bank);
} cls_banks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} cls_active SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SFF);
	__type(key, __u32);         /* spi << 8 | si */
	__type(value, struct sff_action);
} sff SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_MEMBERS);
	__type(key, __u32);
	__type(value, struct member);
} members SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SELECT_SLOTS);
	__type(key, __u32);         /* select slot: service id + 256 * from_remote */
	__type(value, struct group);
} groups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FLOW_CACHE_SIZE);
	__type(key, struct fc_key);
	__type(value, struct fc_val);
} flow_cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_MEMBERS);
	__type(key, __u32);
	__type(value, struct counter);
} member_pkts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, N_DROP_REASONS);
	__type(key, __u32);
	__type(value, struct counter);
} drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct counter);
} misc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dbg_rec);
} dbg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8[CHUNK]);
} scratch SEC(".maps");

/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), one byte at a time. */
static const __u32 crc32c_table[256] = {
	0x00000000, 0xf26b8303, 0xe13b70f7, 0x1350f3f4, 0xc79a971f, 0x35f1141c,
	0x26a1e7e8, 0xd4ca64eb, 0x8ad958cf, 0x78b2dbcc, 0x6be22838, 0x9989ab3b,
	0x4d43cfd0, 0xbf284cd3, 0xac78bf27, 0x5e133c24, 0x105ec76f, 0xe235446c,
	0xf165b798, 0x030e349b, 0xd7c45070, 0x25afd373, 0x36ff2087, 0xc494a384,
	0x9a879fa0, 0x68ec1ca3, 0x7bbcef57, 0x89d76c54, 0x5d1d08bf, 0xaf768bbc,
	0xbc267848, 0x4e4dfb4b, 0x20bd8ede, 0xd2d60ddd, 0xc186fe29, 0x33ed7d2a,
	0xe72719c1, 0x154c9ac2, 0x061c6936, 0xf477ea35, 0xaa64d611, 0x580f5512,
	0x4b5fa6e6, 0xb93425e5, 0x6dfe410e, 0x9f95c20d, 0x8cc531f9, 0x7eaeb2fa,
	0x30e349b1, 0xc288cab2, 0xd1d83946, 0x23b3ba45, 0xf779deae, 0x05125dad,
	0x1642ae59, 0xe4292d5a, 0xba3a117e, 0x4851927d, 0x5b016189, 0xa96ae28a,
	0x7da08661, 0x8fcb0562, 0x9c9bf696, 0x6ef07595, 0x417b1dbc, 0xb3109ebf,
	0xa0406d4b, 0x522bee48, 0x86e18aa3, 0x748a09a0, 0x67dafa54, 0x95b17957,
	0xcba24573, 0x39c9c670, 0x2a993584, 0xd8f2b687, 0x0c38d26c, 0xfe53516f,
	0xed03a29b, 0x1f682198, 0x5125dad3, 0xa34e59d0, 0xb01eaa24, 0x42752927,
	0x96bf4dcc, 0x64d4cecf, 0x77843d3b, 0x85efbe38, 0xdbfc821c, 0x2997011f,
	0x3ac7f2eb, 0xc8ac71e8, 0x1c661503, 0xee0d9600, 0xfd5d65f4, 0x0f36e6f7,
	0x61c69362, 0x93ad1061, 0x80fde395, 0x72966096, 0xa65c047d, 0x5437877e,
	0x4767748a, 0xb50cf789, 0xeb1fcbad, 0x197448ae, 0x0a24bb5a, 0xf84f3859,
	0x2c855cb2, 0xdeeedfb1, 0xcdbe2c45, 0x3fd5af46, 0x7198540d, 0x83f3d70e,
	0x90a324fa, 0x62c8a7f9, 0xb602c312, 0x44694011, 0x5739b3e5, 0xa55230e6,
	0xfb410cc2, 0x092a8fc1, 0x1a7a7c35, 0xe811ff36, 0x3cdb9bdd, 0xceb018de,
	0xdde0eb2a, 0x2f8b6829, 0x82f63b78, 0x709db87b, 0x63cd4b8f, 0x91a6c88c,
	0x456cac67, 0xb7072f64, 0xa457dc90, 0x563c5f93, 0x082f63b7, 0xfa44e0b4,
	0xe9141340, 0x1b7f9043, 0xcfb5f4a8, 0x3dde77ab, 0x2e8e845f, 0xdce5075c,
	0x92a8fc17, 0x60c37f14, 0x73938ce0, 0x81f80fe3, 0x55326b08, 0xa759e80b,
	0xb4091bff, 0x466298fc, 0x1871a4d8, 0xea1a27db, 0xf94ad42f, 0x0b21572c,
	0xdfeb33c7, 0x2d80b0c4, 0x3ed04330, 0xccbbc033, 0xa24bb5a6, 0x502036a5,
	0x4370c551, 0xb11b4652, 0x65d122b9, 0x97baa1ba, 0x84ea524e, 0x7681d14d,
	0x2892ed69, 0xdaf96e6a, 0xc9a99d9e, 0x3bc21e9d, 0xef087a76, 0x1d63f975,
	0x0e330a81, 0xfc588982, 0xb21572c9, 0x407ef1ca, 0x532e023e, 0xa145813d,
	0x758fe5d6, 0x87e466d5, 0x94b49521, 0x66df1622, 0x38cc2a06, 0xcaa7a905,
	0xd9f75af1, 0x2b9cd9f2, 0xff56bd19, 0x0d3d3e1a, 0x1e6dcdee, 0xec064eed,
	0xc38d26c4, 0x31e6a5c7, 0x22b65633, 0xd0ddd530, 0x0417b1db, 0xf67c32d8,
	0xe52cc12c, 0x1747422f, 0x49547e0b, 0xbb3ffd08, 0xa86f0efc, 0x5a048dff,
	0x8ecee914, 0x7ca56a17, 0x6ff599e3, 0x9d9e1ae0, 0xd3d3e1ab, 0x21b862a8,
	0x32e8915c, 0xc083125f, 0x144976b4, 0xe622f5b7, 0xf5720643, 0x07198540,
	0x590ab964, 0xab613a67, 0xb831c993, 0x4a5a4a90, 0x9e902e7b, 0x6cfbad78,
	0x7fab5e8c, 0x8dc0dd8f, 0xe330a81a, 0x115b2b19, 0x020bd8ed, 0xf0605bee,
	0x24aa3f05, 0xd6c1bc06, 0xc5914ff2, 0x37faccf1, 0x69e9f0d5, 0x9b8273d6,
	0x88d28022, 0x7ab90321, 0xae7367ca, 0x5c18e4c9, 0x4f48173d, 0xbd23943e,
	0xf36e6f75, 0x0105ec76, 0x12551f82, 0xe03e9c81, 0x34f4f86a, 0xc69f7b69,
	0xd5cf889d, 0x27a40b9e, 0x79b737ba, 0x8bdcb4b9, 0x988c474d, 0x6ae7c44e,
	0xbe2da0a5, 0x4c4623a6, 0x5f16d052, 0xad7d5351,
};

/* ---- small helpers ---- */

struct pkt {
	__u32 nsh[6];           /* the NSH to send, network byte order */
	__u32 encap_in;         /* bytes between the Ethernet header and the inner packet */
	__u32 in_len;           /* skb->len on arrival (what the counters count) */
	__u32 from_remote;      /* 1: decapsulated from VXLAN-GPE on the router port */
};

static __always_inline void count(void *map, __u32 idx, __u32 len)
{
	struct counter *c = bpf_map_lookup_elem(map, &idx);

	if (c) {
		c->packets += 1;
		c->bytes += len;
	}
}

static __always_inline void note(__u32 in_ifindex, __u32 verdict, __u32 egress,
				 __u32 member, __u32 reason)
{
	__u32 zero = 0;
	struct dbg_rec *d = bpf_map_lookup_elem(&dbg, &zero);

	if (d) {
		d->ingress_ifindex = in_ifindex;
		d->verdict = verdict;
		d->egress_ifindex = egress;
		d->member = member;
		d->drop_reason = reason;
		d->seq += 1;
	}
}

static __always_inline int drop(__u32 in_ifindex, __u32 reason, __u32 len)
{
	count(&drops, reason & (N_DROP_REASONS - 1), len);
	note(in_ifindex, TC_ACT_SHOT, 0, NO_MEMBER, reason);
	return TC_ACT_SHOT;
}

static __always_inline __u32 crc_byte(__u32 crc, __u32 b)
{
	return crc32c_table[(crc ^ b) & 0xff] ^ (crc >> 8);
}

static __always_inline __u32 crc_be32(__u32 crc, __u32 v)
{
	crc = crc_byte(crc, v >> 24);
	crc = crc_byte(crc, v >> 16);
	crc = crc_byte(crc, v >> 8);
	return crc_byte(crc, v);
}

/* ctx1: CRC-32C over src . dst . proto . sport . dport (13 bytes, network order). */
static __always_inline __u32 flow_hash(__u32 src, __u32 dst, __u32 proto, __u32 sport,
				       __u32 dport)
{
	__u32 crc = 0xffffffff;

	crc = crc_be32(crc, src);
	crc = crc_be32(crc, dst);
	crc = crc_byte(crc, proto);
	crc = crc_byte(crc, sport >> 8);
	crc = crc_byte(crc, sport);
	crc = crc_byte(crc, dport >> 8);
	crc = crc_byte(crc, dport);
	return ~crc;
}

static __always_inline __u32 load_ethertype(struct __sk_buff *skb)
{
	__u16 et = 0;

	if (bpf_skb_load_bytes(skb, 12, &et, 2) < 0)
		return 0;
	return bpf_ntohs(et);
}

/* ---- classifier ---- */

static __always_inline int classify(__u32 src, __u32 dst, __u32 proto, __u32 sport,
				    __u32 dport, __u32 *spi)
{
	__u32 zero = 0;
	__u32 *active = bpf_map_lookup_elem(&cls_active, &zero);

	if (!active)
		return 0;
	__u32 bank_id = *active & 1;
	struct cls_bank *bank = bpf_map_lookup_elem(&cls_banks, &bank_id);

	if (!bank)
		return 0;
	__u32 n = bank->count;

	for (__u32 i = 0; i < MAX_RULES; i++) {
		if (i >= n)
			break;
		struct cls_rule *r = &bank->rules[i];

		if ((src & r->src_mask) == r->src && (dst & r->dst_mask) == r->dst &&
		    (proto & r->proto_mask) == r->proto &&
		    (sport & r->sport_mask) == r->sport &&
		    (dport & r->dport_mask) == r->dport) {
			*spi = r->spi;
			return 1;
		}
	}
	return 0;
}

/* ---- ingress parsers: NEXT (p filled), PASS (to the kernel) or DROP(reason) ---- */

static __always_inline int from_host(struct __sk_buff *skb, struct pkt *p)
{
	__u32 iph[5];
	__u8 *b = (__u8 *)iph;

	if (load_ethertype(skb) != ETHERTYPE_IPV4)
		return PASS;
	if (bpf_skb_load_bytes(skb, ETH_HLEN_, iph, 20) < 0)
		return DROP(DR_TRUNCATED);
	__u32 ihl = b[0] & 0x0f;

	if ((b[0] >> 4) != 4 || ihl < 5)
		return DROP(DR_TRUNCATED);
	__u32 src = bpf_ntohl(iph[3]), dst = bpf_ntohl(iph[4]);
	__u32 proto = b[9];
	__u32 frag_off = ((__u32)(b[6] & 0x1f) << 8) | b[7];
	__u32 sport = 0, dport = 0;

	/* ports only without IP options and in unfragmented or first fragments (as P4) */
	if ((proto == IPPROTO_TCP_ || proto == IPPROTO_UDP_) && ihl == 5 && frag_off == 0) {
		__u32 l4 = 0;

		if (bpf_skb_load_bytes(skb, ETH_HLEN_ + 20, &l4, 4) < 0)
			return DROP(DR_TRUNCATED);
		l4 = bpf_ntohl(l4);
		sport = l4 >> 16;
		dport = l4 & 0xffff;
	}
	__u32 spi = 0;

	if (!classify(src, dst, proto, sport, dport, &spi))
		return PASS;
	p->nsh[0] = bpf_htonl(NSH_BASE_INITIAL);
	p->nsh[1] = bpf_htonl(((spi & 0xffffff) << 8) | NSH_INITIAL_SI);
	p->nsh[2] = bpf_htonl(flow_hash(src, dst, proto, sport, dport));
	p->nsh[3] = 0;
	p->nsh[4] = 0;
	p->nsh[5] = 0;
	p->encap_in = 0;
	count(&misc, MISC_CLASSIFIED, p->in_len);
	return NEXT;
}

/* NSH (MD type 1) at `off`, then an inner IPv4 header: checks, TTL - 1, into p->nsh. */
static __always_inline int parse_nsh(struct __sk_buff *skb, __u32 off, struct pkt *p)
{
	if (bpf_skb_load_bytes(skb, off, p->nsh, 8) < 0)
		return DROP(DR_TRUNCATED);
	__u32 base = bpf_ntohl(p->nsh[0]);

	if ((base >> 30) != 0)
		return DROP(DR_BAD_VERSION);
	/* MD type 1, length 6, next protocol IPv4: anything else is bad_md_type (as P4) */
	if (((base >> 8) & 0x0f) != 1 || ((base >> 16) & 0x3f) != 6 || (base & 0xff) != 1)
		return DROP(DR_BAD_MD_TYPE);
	if (bpf_skb_load_bytes(skb, off + 8, &p->nsh[2], 16) < 0)
		return DROP(DR_TRUNCATED);
	if (skb->len < off + NSH_LEN + 20)  /* no room for the inner IPv4 header */
		return DROP(DR_TRUNCATED);
	__u32 ttl = (base >> 22) & 0x3f;

	if (ttl <= 1)           /* decremented to 0 (or arrived as 0): RFC 8300 2.2 */
		return DROP(DR_TTL_EXPIRED);
	if ((bpf_ntohl(p->nsh[1]) & 0xff) == 0)
		return DROP(DR_SI_ZERO);
	base = (base & ~(0x3fu << 22)) | ((ttl - 1) << 22);
	p->nsh[0] = bpf_htonl(base);
	return NEXT;
}

static __always_inline int from_router(struct __sk_buff *skb, struct config *cfg,
				       struct pkt *p)
{
	__u32 iph[5], udp[2], gpe[2];
	__u8 *b = (__u8 *)iph, *g = (__u8 *)gpe;

	if (load_ethertype(skb) != ETHERTYPE_IPV4)
		return PASS;
	if (bpf_skb_load_bytes(skb, ETH_HLEN_, iph, 20) < 0)
		return PASS;
	__u32 ihl = b[0] & 0x0f;

	if ((b[0] >> 4) != 4 || ihl < 5 || b[9] != IPPROTO_UDP_ || !cfg->valid ||
	    bpf_ntohl(iph[4]) != cfg->local_ip)
		return PASS;
	if ((b[6] & 0x1f) || b[7])          /* non-first fragment: the kernel's */
		return PASS;
	__u32 l4 = ETH_HLEN_ + ihl * 4;

	if (bpf_skb_load_bytes(skb, l4, udp, 8) < 0)
		return DROP(DR_TRUNCATED);
	if ((bpf_ntohl(udp[0]) & 0xffff) != GPE_PORT)
		return PASS;
	if (b[6] & 0x20)                    /* first fragment of a tunnel packet */
		return DROP(DR_TOO_BIG);
	if (bpf_skb_load_bytes(skb, l4 + 8, gpe, 8) < 0)
		return DROP(DR_TRUNCATED);
	if (!(g[0] & 0x04) || g[3] != 4)    /* P flag, next protocol NSH (as P4) */
		return DROP(DR_BAD_GPE);
	p->encap_in = ihl * 4 + 16 + NSH_LEN;
	p->from_remote = 1;
	return parse_nsh(skb, l4 + 16, p);
}

static __always_inline int from_vnf(struct __sk_buff *skb, struct pkt *p)
{
	__u32 et = load_ethertype(skb);

	if (et == ETHERTYPE_NSH) {
		p->encap_in = NSH_LEN;
		return parse_nsh(skb, ETH_HLEN_, p);
	}
	if (et == ETHERTYPE_ARP)
		return PASS;
	if (et == ETHERTYPE_IPV6) {     /* neighbour discovery goes to the kernel */
		__u8 nh = 0, type = 0;

		if (bpf_skb_load_bytes(skb, ETH_HLEN_ + 6, &nh, 1) == 0 && nh == IPPROTO_ICMPV6_ &&
		    bpf_skb_load_bytes(skb, ETH_HLEN_ + 40, &type, 1) == 0 &&
		    type >= 133 && type <= 137)
			return PASS;
	}
	return DROP(DR_NOT_NSH);
}

/* ---- resizing ---- */

/* Move [from, len) down to `to` (< from) and trim the tail: a head pull for skbs that
 * bpf_skb_adjust_room() refuses (non-IP ethertype). */
static __always_inline int move_payload(struct __sk_buff *skb, __u32 from, __u32 to)
{
	__u32 zero = 0;
	__u8 *buf = bpf_map_lookup_elem(&scratch, &zero);
	__u32 len = skb->len;

	if (!buf || to >= from || from > len || len - from > CHUNK * MAX_CHUNKS)
		return -1;
	for (__u32 i = 0; i < MAX_CHUNKS; i++) {
		__u32 off = i * CHUNK;

		if (from + off >= len)
			break;
		__u32 n = len - from - off;

		if (n > CHUNK)
			n = CHUNK;
		if (n == 0)
			break;
		asm volatile("" : "+r"(n));     /* then re-derive 1 <= n <= CHUNK for the verifier */
		n = ((n - 1) & (CHUNK - 1)) + 1;
		if (bpf_skb_load_bytes(skb, from + off, buf, n) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, to + off, buf, n, 0) < 0)
			return -1;
	}
	return bpf_skb_change_tail(skb, len - (from - to), 0);
}

/* Make room for exactly `encap_out` bytes of headers after the Ethernet header. */
static __always_inline int resize(struct __sk_buff *skb, __u32 encap_in, __u32 encap_out)
{
	if (encap_out > encap_in)
		return bpf_skb_change_head(skb, encap_out - encap_in, 0);
	if (encap_out < encap_in) {
		if (bpf_skb_adjust_room(skb, -(__s32)(encap_in - encap_out), BPF_ADJ_ROOM_MAC,
					0) == 0)
			return 0;
		return move_payload(skb, ETH_HLEN_ + encap_in, ETH_HLEN_ + encap_out);
	}
	return 0;
}

/* ---- step S: sff_next, instance_select (flow cache first), rewrite, redirect ---- */

static __always_inline __u32 select_member(struct config *cfg, struct group *g, __u32 slot,
					   __u32 ctx1)
{
	__u32 n = g->n_slots;

	if (n > GROUP_SLOTS)
		return NO_MEMBER;
	/* n == 0 (every member draining, weight 0) still serves the flows in the cache */
	__u64 timeout = (__u64)cfg->cache_timeout_ms * NSEC_PER_MSEC;
	__u64 now = bpf_ktime_get_ns();
	struct fc_key k = { .hash = ctx1, .slot = slot };

	if (timeout) {
		struct fc_val *v = bpf_map_lookup_elem(&flow_cache, &k);

		if (v) {
			__u32 cm = v->member;
			__u64 age = now - v->last_ns;

			if (cm < MAX_MEMBERS && age <= timeout &&
			    ((g->bits[(cm >> 6) & 15] >> (cm & 63)) & 1)) {
				struct member *m = bpf_map_lookup_elem(&members, &cm);

				if (m && m->kind != MEMBER_NONE) {
					if (age > (timeout >> 3))
						v->last_ns = now;
					return cm;
				}
			}
		}
	}
	if (n == 0)
		return NO_MEMBER;
	__u32 idx = ctx1 % n;

	asm volatile("" : "+r"(idx));   /* keep clang from dropping the bound */
	idx &= GROUP_SLOTS - 1;
	__u32 mid = g->slots[idx];

	if (timeout) {
		struct fc_val nv = { .last_ns = now, .member = mid };

		bpf_map_update_elem(&flow_cache, &k, &nv, BPF_ANY);
	}
	return mid;
}

static __always_inline int forward(struct __sk_buff *skb, struct config *cfg, struct pkt *p,
				   __u32 in_ifindex)
{
	__u32 key = bpf_ntohl(p->nsh[1]);   /* spi << 8 | si */
	struct sff_action *a = bpf_map_lookup_elem(&sff, &key);
	__u32 eth[4] = {};
	__u8 *e = (__u8 *)eth;
	__u32 encap_out, out_ifindex, mtu, mid = NO_MEMBER, endpoint = 0;

	if (!a)
		return drop(in_ifindex, DR_UNKNOWN_PATH, p->in_len);
	if (a->kind == SFF_END_OF_CHAIN) {
		encap_out = 0;
		out_ifindex = cfg->router_ifindex;
		mtu = cfg->router_mtu;
		__builtin_memcpy(e, cfg->router_mac, 6);
		__builtin_memcpy(e + 6, cfg->local_mac, 6);
		e[12] = ETHERTYPE_IPV4 >> 8;
		e[13] = ETHERTYPE_IPV4 & 0xff;
	} else if (a->kind == SFF_TO_SERVICE) {
		/* select slot of (service id, from_remote) */
		__u32 slot = (a->service_id & (MAX_SERVICES - 1)) |
			     (p->from_remote ? MAX_SERVICES : 0);
		struct group *g = bpf_map_lookup_elem(&groups, &slot);

		if (!g)
			return drop(in_ifindex, DR_NO_INSTANCE, p->in_len);
		mid = select_member(cfg, g, slot, bpf_ntohl(p->nsh[2]));
		if (mid >= MAX_MEMBERS)
			return drop(in_ifindex, DR_NO_INSTANCE, p->in_len);
		struct member *m = bpf_map_lookup_elem(&members, &mid);

		if (!m)
			return drop(in_ifindex, DR_NO_INSTANCE, p->in_len);
		if (m->kind == MEMBER_LOCAL) {
			__u32 port = m->port & (MAX_PORTS - 1);
			struct port_info *op = bpf_map_lookup_elem(&p4ports, &port);

			if (!op || !op->ifindex)
				return drop(in_ifindex, DR_NO_INSTANCE, p->in_len);
			encap_out = NSH_LEN;
			out_ifindex = op->ifindex;
			mtu = op->mtu;
			__builtin_memcpy(e, m->dmac, 6);
			__builtin_memcpy(e + 6, op->mac, 6);
			e[12] = ETHERTYPE_NSH >> 8;
			e[13] = ETHERTYPE_NSH & 0xff;
		} else if (m->kind == MEMBER_REMOTE) {
			encap_out = GPE_ENCAP_LEN + NSH_LEN;
			out_ifindex = cfg->router_ifindex;
			mtu = cfg->router_mtu;
			endpoint = m->endpoint;
			__builtin_memcpy(e, cfg->router_mac, 6);
			__builtin_memcpy(e + 6, cfg->local_mac, 6);
			e[12] = ETHERTYPE_IPV4 >> 8;
			e[13] = ETHERTYPE_IPV4 & 0xff;
		} else {
			return drop(in_ifindex, DR_NO_INSTANCE, p->in_len);
		}
	} else {
		return drop(in_ifindex, DR_POLICY_DROP, p->in_len);
	}
	if (!out_ifindex)
		return drop(in_ifindex, DR_NO_INSTANCE, p->in_len);

	__u32 out_len = p->in_len + encap_out - p->encap_in;

	if (mtu && out_len - ETH_HLEN_ > mtu)
		return drop(in_ifindex, DR_TOO_BIG, p->in_len);
	if (encap_out && skb->gso_size)     /* a GSO skb cannot carry NSH: turn TSO off */
		return drop(in_ifindex, DR_TOO_BIG, p->in_len);
	if (resize(skb, p->encap_in, encap_out) < 0)
		return drop(in_ifindex, DR_TOO_BIG, p->in_len);
	if (bpf_skb_store_bytes(skb, 0, eth, ETH_HLEN_, 0) < 0)
		return drop(in_ifindex, DR_TOO_BIG, p->in_len);

	if (encap_out == NSH_LEN) {
		if (bpf_skb_store_bytes(skb, ETH_HLEN_, p->nsh, NSH_LEN, 0) < 0)
			return drop(in_ifindex, DR_TOO_BIG, p->in_len);
	} else if (encap_out) {
		__u32 o[9];
		__u32 ip_len = out_len - ETH_HLEN_;
		__u32 src = cfg->local_ip;
		__u32 ctx1 = bpf_ntohl(p->nsh[2]);
		__u32 sum = 0x4500 + ip_len + 0x4000 + ((64 << 8) | IPPROTO_UDP_) +
			    (src >> 16) + (src & 0xffff) + (endpoint >> 16) + (endpoint & 0xffff);

		sum = (sum & 0xffff) + (sum >> 16);
		sum = (sum & 0xffff) + (sum >> 16);
		o[0] = bpf_htonl(0x45000000 | ip_len);
		o[1] = bpf_htonl(0x00004000);               /* id 0, DF */
		o[2] = bpf_htonl((64 << 24) | (IPPROTO_UDP_ << 16) | (~sum & 0xffff));
		o[3] = bpf_htonl(src);
		o[4] = bpf_htonl(endpoint);
		o[5] = bpf_htonl(((0xc000 | (ctx1 & 0x3fff)) << 16) | GPE_PORT);
		o[6] = bpf_htonl((ip_len - 20) << 16);      /* UDP length, checksum 0 */
		o[7] = bpf_htonl(0x0c000004);               /* flags I+P, next protocol NSH */
		o[8] = 0;                                   /* VNI 0 */
		if (bpf_skb_store_bytes(skb, ETH_HLEN_, o, GPE_ENCAP_LEN, 0) < 0 ||
		    bpf_skb_store_bytes(skb, ETH_HLEN_ + GPE_ENCAP_LEN, p->nsh, NSH_LEN, 0) < 0)
			return drop(in_ifindex, DR_TOO_BIG, p->in_len);
	}

	if (mid != NO_MEMBER)
		count(&member_pkts, mid & (MAX_MEMBERS - 1), p->in_len);
	else
		count(&misc, MISC_END_OF_CHAIN, p->in_len);
	note(in_ifindex, TC_ACT_REDIRECT, out_ifindex, mid, 0xffffffff);
	return bpf_redirect(out_ifindex, 0);
}

SEC("tc")
int connector(struct __sk_buff *skb)
{
	__u32 zero = 0, in_ifindex = skb->ingress_ifindex;
	struct port_info *in = bpf_map_lookup_elem(&ports, &in_ifindex);

	if (!in)
		return TC_ACT_OK;
	struct config *cfg = bpf_map_lookup_elem(&config, &zero);

	if (!cfg)
		return TC_ACT_OK;
	struct pkt p = { .in_len = skb->len };
	int rc;

	switch (in->role) {
	case ROLE_HOST:
		rc = from_host(skb, &p);
		break;
	case ROLE_ROUTER:
		rc = from_router(skb, cfg, &p);
		break;
	case ROLE_VNF:
		rc = from_vnf(skb, &p);
		break;
	default:
		rc = PASS;
	}
	if (rc == PASS) {
		note(in_ifindex, TC_ACT_OK, 0, NO_MEMBER, 0xffffffff);
		return TC_ACT_OK;
	}
	if (rc != NEXT)
		return drop(in_ifindex, rc & 0xff, p.in_len);
	return forward(skb, cfg, &p, in_ifindex);
}

/* dual-licensed (SPDX line above); the kernel needs the GPL declaration */
char LICENSE[] SEC("license") = "GPL";
