"""dsfc: topologies package."""
