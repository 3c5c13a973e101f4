"""The probe: what a model stores, measured by likelihood in the form it learned (docs/probe.md)."""
