"""P4Runtime server for the dsfc connector, in front of any :class:`~connector_p4.target.Target`.

The server owns the P4Runtime state (table entries, action-profile members and groups,
arbitration) for the fixed pipeline described by ``connector.p4info.txtpb`` and turns every
accepted change into calls on a target (the eBPF maps, or a test double). See PIPELINE.md.

Run it inside the connector's network namespace (one server per connector; the socket
lives in the run folder, so it is not reachable from the emulated network)::

    python -m connector_p4.p4rt_server --socket /run/dsfc/<run>/cA/p4rt.sock \\
        --target ebpf --bpf-object connector_p4/ebpf/build/connector.o \\
        --pin-dir /sys/fs/bpf/dsfc/<run>/cA \\
        --port 1=rtr --port 2=rtrh --port 16=v-fw1 --port 64=h-h1 \\
        [--local-ip 10.1.0.2 --router-mac 02:.. --local-mac 02:..]

``--port N=IFNAME[:ROLE]``: the role follows from N (1 router, 2 hostbridge, 16..63 vnf,
64..511 host); ifindex and MAC are read in the current namespace. With nothing pinned at
``--pin-dir`` the object is loaded (``EbpfTarget.load``) and attached to the ports with tc
(``--no-attach`` to skip); with a pipeline already pinned there the server takes it over
(``EbpfTarget.open_pinned``) and rebuilds its P4Runtime view from the maps (see
"Restart takeover" below). Stopping the server (SIGTERM) closes its descriptors
only: the pinned pipeline keeps forwarding; detaching and unpinning is the builder's
cleanup. ``--target null`` runs without a data plane (demos, dry runs). ``--grpc-addr
127.0.0.1:9559`` adds (or replaces) a TCP listener.

Talk to it with p4runtime-shell (it accepts any gRPC target string, ``unix:`` included)::

    python -m p4runtime_sh --grpc-addr unix:/run/dsfc/<run>/cA/p4rt.sock \\
        --device-id 1 --election-id 0,1

What it implements (P4Runtime 1.4 semantics unless noted):

* StreamChannel arbitration for the default role. Every MasterArbitrationUpdate is answered
  at once. ``--arbitration live`` (default): the primary is the live client with the highest
  election id, so a backup takes over when the primary disconnects (how PI/BMv2 behaved
  before P4Runtime 1.3). ``--arbitration spec``: P4Runtime >= 1.3, the primary must hold the
  highest election id ever seen; after it leaves, a client has to re-arbitrate with an
  election id at least as high.
* SetForwardingPipelineConfig: the pipeline is fixed, so a config is accepted only if its
  P4Info equals ours (ids, names, match fields, action parameters, scopes, sizes, counters,
  profiles, registers; pkg_info, aliases, annotations and docs are ignored), otherwise
  INVALID_ARGUMENT. VERIFY, VERIFY_AND_SAVE, VERIFY_AND_COMMIT (clears the forwarding state),
  COMMIT (after a save) and RECONCILE_AND_COMMIT (keeps the state) are supported. The
  pipeline is installed from the start, so Write works without it.
* GetForwardingPipelineConfig: our P4Info and a cookie (the client's, after a Set with a
  cookie; otherwise derived from the P4Info digest).
* Write: TableEntry for classifier (ternary, priority > 0), sff_next (exact), the default
  entry of sff_config (MODIFY; no action = back to the start-up value) and instance_select
  (group or member reference); ActionProfileMember / ActionProfileGroup (weights 1..64, sum
  <= max_group_size 64, max_size 0 meaning 64) of instance_selector. Updates are applied in
  order, each validated on its own (CONTINUE_ON_ERROR); a failed batch is gRPC UNKNOWN with
  ``grpc-status-details-bin`` = google.rpc.Status holding one p4.v1.Error per update (OK for
  those that succeeded). Byte strings may carry leading zero bytes; values wider than the
  bitwidth or empty are OUT_OF_RANGE. Unknown table/profile/counter ids are NOT_FOUND. Only
  the primary may write (PERMISSION_DENIED otherwise).
* Read: wildcards on tables (all tables, one table, default entry, match/priority/action/
  metadata filters), members, groups, and CounterEntry (one index or all) from the
  target's counters. Reads go through a single lock with writes, so they are consistent.
* Not supported: l2_forward (BMv2 only; the kernel does it on eBPF) and register entries
  (the BMv2 flow cache): UNIMPLEMENTED; one-shot selector programming, watch ports,
  counter writes, packet I/O, digests, meters, PRE entries, non-default roles,
  ROLLBACK_ON_ERROR and DATAPLANE_ATOMIC batches: UNIMPLEMENTED.

Translation to the target: classifier -> ``set_classifier`` with the whole rule set sorted
by priority (highest first, ties in insertion order) on every change; sff_next ->
``set_sff``/``delete_sff``; members -> ``set_member``/``delete_member``. instance_select
is keyed by (service id, from_remote); each entry (sid, fr) owns the target's *select slot*
sid + 256 * fr (``target.select_slot``): the members of the group the entry points to (or
a single member of weight 1) -> ``set_group(slot, ...)``. Several entries may point at one
group (the D-MANO points (sid, 0) and (sid, 1) at the same group when the node has no
instance of sid): a change of the group's members or weights is re-sent to every slot
that uses it; an empty group is ``delete_group(slot)`` (packets dropped as no_instance);
deleting the entry deletes its slot. Target errors (:class:`TargetError`) become the
per-update error with the target's code. Classifier capacity is the P4Info table size
(64), sff_next 4096, instance_select 512 (256 services x from_remote), members 1024 (the
action-profile size).

Restart takeover: a server started over a running target (``restore``, e.g. pinned eBPF
maps) rebuilds its view from them. The target knows slots, not P4Runtime groups, so the
server invents the group ids, the same way the D-MANO numbers its groups (so a D-MANO that
resyncs after a server restart finds its own ids): the group of slot S (entry (S, 0))
becomes group S (group 512 for service 0, which P4Runtime cannot number 0); the group of
slot 256 + S (entry (S, 1)) becomes that same group when both slots hold the same members
and weights in the same order (one group shared by both entries), else its own group
256 + S (= the slot). Restored groups have max_size 0, which stands for the largest size:
a writer that resyncs may modify them with max_size 64 (or 0).

Note: P4Runtime 1.4 asks that all members of a group use the same action; this server
deliberately accepts groups mixing to_local_vnf and to_remote members (a service's local
and remote instances share one group).

Modules (one job each): ``schema`` (the P4Info: loading, what makes two the same, the names
the server binds to), ``errors`` (P4RTError, byte strings), ``validate`` (checks of
entries and actions against the P4Info), ``state`` (the P4Runtime state and the target
calls it makes), ``tables`` / ``profiles`` (writes of table entries / of action-profile
members and groups), ``reads`` (Read and counters), ``restore`` (restart takeover),
``pipeline`` (the facade the servicer calls), ``arbiter``, ``servicer`` (gRPC),
``server`` (lifecycle), ``null_target``, ``cli`` (``python -m connector_p4.p4rt_server``).
"""

from connector_p4.p4rt_server.arbiter import Arbiter
from connector_p4.p4rt_server.cli import build_arg_parser, main
from connector_p4.p4rt_server.errors import P4RTError
from connector_p4.p4rt_server.null_target import NullTarget
from connector_p4.p4rt_server.pipeline import Pipeline
from connector_p4.p4rt_server.schema import (
    API_VERSION,
    DEFAULT_DEVICE_ID,
    P4INFO_PATH,
    load_p4info,
    p4info_cookie,
    p4info_fingerprint,
)
from connector_p4.p4rt_server.server import P4RuntimeServer
from connector_p4.p4rt_server.servicer import P4RuntimeServicer

__all__ = [
    "API_VERSION",
    "DEFAULT_DEVICE_ID",
    "P4INFO_PATH",
    "Arbiter",
    "NullTarget",
    "P4RTError",
    "P4RuntimeServer",
    "P4RuntimeServicer",
    "Pipeline",
    "build_arg_parser",
    "load_p4info",
    "main",
    "p4info_cookie",
    "p4info_fingerprint",
]
