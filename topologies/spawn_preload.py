"""Imported last by the fork server of :mod:`topologies.spawn`: everything imported so far
(the daemons' modules and libraries) is moved out of the garbage collector's reach, so
the forked children do not write to those pages (copy-on-write keeps them shared)."""

import gc

gc.collect()
gc.freeze()
