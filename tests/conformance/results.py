"""Live conformance statuses of this session (written to edgeth/conformance.json when recording)."""
RESULTS: dict[str, dict[str, str]] = {}
