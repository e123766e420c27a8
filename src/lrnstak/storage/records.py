"""What the registry table stores, as plain data: one item per model version and one summary per model."""

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class VersionRecord:
    model: str
    version: str
    created_at: str
    updated_at: str
    # Changes on every save of this version; conditional writes compare it to detect a concurrent overwrite.
    write_id: str
    artifact_key: str
    training_data_key: str | None
    size: int
    sha256: str
    sklearn_version: str
    algorithm: str
    metrics: dict[str, float]
    parameters: dict[str, Any]
    training_results: dict[str, Any] | None
    # Columns and kinds seen at training, for predict's input checks (None for uploaded models).
    feature_schema: dict[str, Any] | None = None

    @property
    def object_keys(self) -> list[str]:
        return [key for key in (self.artifact_key, self.training_data_key) if key]


@dataclass(frozen=True)
class ModelSummary:
    model: str
    # version -> created_at; the summary is what GET /models pages over, so it carries the whole list.
    versions: dict[str, str] = field(default_factory=dict)
    updated_at: str = ""
    # Bumped by every write; writers condition on the revision they read.
    revision: int = 0

    @property
    def latest(self) -> str | None:
        if not self.versions:
            return None
        return max(self.versions.items(), key=lambda item: (item[1], item[0]))[0]

    def with_version(self, version: str, created_at: str, now: str) -> "ModelSummary":
        return replace(
            self, versions={**self.versions, version: created_at}, updated_at=now, revision=self.revision + 1
        )

    def without_versions(self, versions: set[str], now: str) -> "ModelSummary":
        remaining = {name: created for name, created in self.versions.items() if name not in versions}
        return replace(self, versions=remaining, updated_at=now, revision=self.revision + 1)
