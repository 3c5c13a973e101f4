"""The systems the probe scores, each a ProbeBackend."""
