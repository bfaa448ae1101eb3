"""dsfc: scenarios package."""
