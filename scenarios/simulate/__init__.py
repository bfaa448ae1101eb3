"""``python -m scenarios simulate``: the control plane of 1 000-10 000 NFV nodes, simulated.

A discrete-event model of the network that an emulated run of the same scenario file
would build, without namespaces, FRR or processes (DESIGN.md section 11):

* OSPF flooding with FRR's timers as the builder configures them (per-hop delay, LSA
  throttle, min-arrival, SPF throttle, BFD / carrier detection, adjacency formation):
  :mod:`~scenarios.simulate.flooding`;
* LSAs in their real encoding (``dmano.lsa.encode``, ``dmano.lsdb.build_router_lsa`` /
  ``build_opaque_lsa``), decoded by the D-MANO's parsers, in one LSDB shared by every
  router (:mod:`~scenarios.simulate.store`);
* at every node the D-MANO's own code: its announcement decisions, the service plane
  (network part per router-LSA signature, :mod:`~scenarios.simulate.paths`; candidates
  and WCMP weights by :func:`dmano.service_plane.candidate_tables`) and its connector
  groups (:mod:`~scenarios.simulate.dmano_node`);
* flows placed by the connector's rule (flow hash, slots, flow cache, chains):
  :mod:`~scenarios.simulate.traffic`;
* the scenario's timeline with the emulation's event semantics:
  :mod:`~scenarios.simulate.sim`;
* the emulated run's files plus ``controlplane.csv`` and ``convergence.csv``
  (:mod:`~scenarios.simulate.outputs`, :mod:`~scenarios.simulate.convergence`), read by
  :mod:`scenarios.report` like an emulated run's.

Large synthetic networks for it: :mod:`~scenarios.simulate.synthetic`. The command:
:mod:`~scenarios.simulate.cli`. What differs from the emulation on purpose is listed in
the README ("Simulating large networks").
"""
