"""dsfc: dmano package."""
