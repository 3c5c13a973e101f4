"""Typed models of every artifact that crosses a service boundary, one module per area."""
