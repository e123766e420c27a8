"""`make lint-compose` (scripts/check_compose.py): the compose-spec schema and the repository's own rules."""

from pathlib import Path

import pytest
import yaml

from support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
check_compose = load_script("check_compose")


def test_the_repository_compose_file_is_valid() -> None:
    assert check_compose.main([str(ROOT / "docker-compose.yml")]) == 0


def test_the_schema_rejects_what_compose_would(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "docker-compose.yml"
    path.write_text(
        yaml.safe_dump({"services": {"aws": {"image": "motoserver/moto:5.2.3", "profiles": ["moto"], "restrat": "no"}}})
    )
    assert check_compose.main([str(path)]) == 1
    assert "restrat" in capsys.readouterr().err


def test_images_are_pinned_and_every_service_has_a_profile_with_its_dependencies() -> None:
    document = {
        "services": {
            "aws": {"image": "motoserver/moto:latest"},
            "init": {"build": ".", "profiles": ["moto"], "depends_on": {"aws": {"condition": "service_healthy"}}},
            "other": {"image": "localstack/localstack", "profiles": ["localstack"], "depends_on": ["nothing"]},
        }
    }
    errors = check_compose.project_errors(document)
    assert errors == [
        "services/aws/image: motoserver/moto:latest is not pinned to a version tag",
        "services/aws: in no profile, so every `docker compose up` starts it",
        "services/init/depends_on: aws is not in every profile of init",
        "services/other/image: localstack/localstack is not pinned to a version tag",
        "services/other/depends_on: no service nothing",
    ]
