"""The typed manifest that publishes a stage run: written last, it is what makes a run exist."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class OutputRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @property
    def name(self) -> str:
        """The output's name inside its run (the key without ``<stage>/<run_id>/``)."""
        return self.key.split("/", 2)[2]


class InputRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    run: str = Field(description="<stage>/<run_id> of the run that produced it, or 'bundled'")


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    stage: str
    run_id: str
    created: datetime
    code_version: str
    fingerprint: str = Field(description="sha256 of stage, settings and inputs: equal means skip")
    settings: dict[str, Any]
    inputs: list[InputRef]
    outputs: list[OutputRef]
    metrics: dict[str, Any] = {}

    @property
    def run(self) -> str:
        return f"{self.stage}/{self.run_id}"

    def output(self, name: str) -> OutputRef:
        for ref in self.outputs:
            if ref.name == name:
                return ref
        raise KeyError(f"run {self.run} has no output {name!r}; it has: {', '.join(o.name for o in self.outputs)}")

    def outputs_under(self, prefix: str) -> list[OutputRef]:
        return [o for o in self.outputs if o.name.startswith(prefix)]
