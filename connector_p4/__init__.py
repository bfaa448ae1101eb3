"""dsfc: connector_p4 package."""
