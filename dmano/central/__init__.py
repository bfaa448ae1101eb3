"""The centralized baseline orchestrator (DESIGN §10)."""
