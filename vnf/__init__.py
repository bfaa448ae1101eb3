"""dsfc: vnf package."""
