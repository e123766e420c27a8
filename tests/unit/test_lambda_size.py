"""`make size` (scripts/lambda_size.py) on a fake `sam build` output: what it adds up and when it fails."""

import shutil
from pathlib import Path

import pytest

from support.scripts import load_script

KB = 1024

BUILT_TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.12
    Layers:
      - Ref: SharedLayer
Resources:
  SharedLayer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: SharedLayer}
  SklearnLayer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: SklearnLayer}
  CacheFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: CacheFunction, Handler: app.handler}
  PredictFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: PredictFunction
      Handler: app.handler
      Layers:
        - Ref: SklearnLayer
"""


lambda_size = load_script("lambda_size")


def write(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    (tmp_path / "template.yaml").write_text(BUILT_TEMPLATE)
    write(tmp_path / "CacheFunction" / "app.py", 1 * KB)
    write(tmp_path / "PredictFunction" / "app.py", 2 * KB)
    write(tmp_path / "SharedLayer" / "python" / "lrnstak" / "__init__.py", 10 * KB)
    write(tmp_path / "SharedLayer" / "python" / "fastapi" / "routing.py", 20 * KB)
    write(tmp_path / "SklearnLayer" / "python" / "sklearn" / "_tree.so", 300 * KB)
    write(tmp_path / "SklearnLayer" / "python" / "scikit_learn-1.9.1.dist-info" / "RECORD", 5 * KB)
    return tmp_path


def test_a_function_weighs_its_folder_plus_each_of_its_layers(build_dir: Path) -> None:
    sizes = {size.function: size for size in lambda_size.function_sizes(build_dir)}
    assert sizes["CacheFunction"].layers == {"SharedLayer": 30 * KB}
    assert sizes["CacheFunction"].total == 31 * KB
    assert sizes["PredictFunction"].layers == {"SharedLayer": 30 * KB, "SklearnLayer": 305 * KB}
    assert sizes["PredictFunction"].total == 337 * KB


def test_it_passes_under_the_threshold_and_prints_every_function(
    build_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = lambda_size.main(["--build-dir", str(build_dir), "--fail-above-mb", "0.5", "--limit-mb", "1"])
    output = capsys.readouterr().out
    assert code == 0
    assert "CacheFunction" in output
    assert "PredictFunction" in output
    assert "SklearnLayer 0.3 MB" in output


def test_it_fails_above_the_threshold_and_names_the_function(
    build_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 100 KB: the cache function (31 KB) fits, the predict function (337 KB) does not.
    code = lambda_size.main(["--build-dir", str(build_dir), "--fail-above-mb", str(100 / 1024)])
    captured = capsys.readouterr()
    assert code == 1
    assert "error: PredictFunction above" in captured.err
    assert "CacheFunction" not in captured.err


def test_a_missing_build_says_to_build(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="make build"):
        lambda_size.main(["--build-dir", str(tmp_path / "nothing")])


def test_a_layer_missing_from_the_build_is_an_error_not_a_zero(build_dir: Path) -> None:
    shutil.rmtree(build_dir / "SklearnLayer")
    with pytest.raises(SystemExit, match="SklearnLayer is missing"):
        lambda_size.function_sizes(build_dir)
