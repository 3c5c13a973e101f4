"""The typed manifest that publishes a stage run: written last, it is what makes a run exist."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.errors import MissingArtifact


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
    name: str | None = Field(None, description="its output name in that run (derived from key in older manifests)")

    @model_validator(mode="after")
    def _name_from_key(self) -> InputRef:
        """Manifests written before inputs carried their name still load with one."""
        if self.name is None and self.key.startswith(self.run + "/"):
            self.name = self.key[len(self.run) + 1:]
        return self

    @property
    def stage(self) -> str:
        """The producing stage (``bundled`` for files shipped with the code)."""
        return self.run.split("/", 1)[0]


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
        raise MissingArtifact(f"run {self.run} has no output {name!r}; it has: {', '.join(o.name for o in self.outputs)}")

    def outputs_under(self, prefix: str) -> list[OutputRef]:
        return [o for o in self.outputs if o.name.startswith(prefix)]

    def input(self, name: str, stage: str | None = None) -> InputRef:
        """The input read as output ``name`` (of a run of ``stage`` when several runs gave one)."""
        found = [i for i in self.inputs if i.name == name and (stage is None or i.stage == stage)]
        if len(found) != 1:
            which = f"{name!r}" + (f" from {stage}" if stage else "")
            raise MissingArtifact(f"run {self.run} records {len(found)} inputs {which}; it read: "
                           + ", ".join(f"{i.run}:{i.name}" for i in self.inputs))
        return found[0]

    def upstream(self, stage: str) -> str:
        """``<stage>/<run_id>`` of the one run of ``stage`` whose outputs this run read."""
        found = sorted({i.run for i in self.inputs if i.stage == stage})
        if len(found) != 1:
            raise MissingArtifact(f"run {self.run} read from {len(found)} {stage} runs ({', '.join(found) or 'none'})")
        return found[0]
