"""params.yaml loading: typed sections, clear errors for malformed files and bad values."""

import pytest

from helpers import REPO
from vaeops.cli import main
from vaeops.core.errors import ParamsError
from vaeops.core.params import load_params, parse_assignments


def test_repo_params_load_into_typed_sections():
    params = load_params(REPO / "params.yaml")
    assert params.data.dataset == "digits"
    assert isinstance(params.data.val_fraction, float)


def test_overrides_replace_single_keys():
    params = load_params(REPO / "params.yaml", overrides={"data.seed": 7})
    assert params.data.seed == 7
    assert params.data.dataset == "digits"


@pytest.mark.parametrize(
    "text, message",
    [
        ("data: [unclosed", "not valid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
        (
            "data:\n  dataset: cifar\n",
            "data.dataset: Input should be 'digits', 'mnist' or 'fashion-mnist', got 'cifar'",
        ),
        ("data:\n  seed: one\n", "data.seed: Input should be a valid integer, got 'one'"),
        ("data:\n  seed: true\n", "data.seed: Input should be a valid integer, got True"),
        ("data:\n  val_fraction: 0.6\n  test_fraction: 0.5\n", "must be below 1"),
        ("data:\n  colour: blue\n", "data.colour: unknown key"),
        ("dataa:\n  seed: 1\n", "unknown section(s) dataa"),
    ],
)
def test_bad_params_name_the_problem(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=None) as info:
        load_params(path)
    assert message in str(info.value)


def test_cli_reports_params_errors_without_traceback(tmp_path, capsys):
    path = tmp_path / "params.yaml"
    path.write_text("data:\n  dataset: cifar\n")
    assert main(["prepare", "--params", str(path)]) == 2
    assert "data.dataset: Input should be" in capsys.readouterr().err


def test_missing_params_file(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")


def test_assignments_are_read_as_yaml_and_reach_any_key():
    overrides = parse_assignments(
        [
            "train.epochs=3",
            "model.hidden=[64, 32]",
            "train.lr=1e-3",
            "data.source_dir=null",
            "train.compile=true",
            "train.epochs=4",
        ]
    )
    assert overrides == {
        "train.epochs": 4,
        "model.hidden": [64, 32],
        "train.lr": "1e-3",
        "data.source_dir": None,
        "train.compile": True,
    }
    params = load_params(REPO / "params.yaml", overrides)
    assert params.train.epochs == 4 and params.model.hidden == [64, 32] and params.train.lr == 0.001


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("train.epochs", "write section.key=value"),
        ("epochs=3", "write section.key=value"),
        ("trian.epochs=3", "params.yaml has no section 'trian'"),
        ("train.epoch=3", "the 'train' section has no key 'epoch'"),
        ("train.epochs=[1", "the value is not valid YAML"),
        ("train.epochs=0", "train.epochs: Input should be greater than or equal to 1, got 0"),
        ("orchestrate.runner=ray", "orchestrate.runner: Input should be 'local' or 'dask', got 'ray'"),
        ("orchestrate.address=localhost:8786", "orchestrate.address must look like tcp://host:8786"),
        ("orchestrate.workers=0", "orchestrate.workers: Input should be greater than or equal to 1, got 0"),
        ("serve.concurrent_runs=0", "serve.concurrent_runs: Input should be greater than or equal to 1, got 0"),
    ],
)
def test_a_bad_assignment_is_refused_by_name(assignment, message):
    with pytest.raises(ParamsError) as info:
        load_params(REPO / "params.yaml", parse_assignments([assignment]))
    assert message in str(info.value)


@pytest.mark.parametrize(
    "command",
    [
        "prepare",
        "validate",
        "drift",
        "train",
        "evaluate",
        "plots",
        "export",
        "serve",
        "triton-repo",
        "promote",
        "champion",
    ],
)
def test_every_command_takes_assignments_and_refuses_a_bad_key(command, capsys):
    argv = [command, "--params", str(REPO / "params.yaml"), "-S", "train.epochs=3", "-S", "train.epoch=3"]
    argv += ["list"] if command == "champion" else []
    assert main(argv) == 2
    assert "the 'train' section has no key 'epoch'" in capsys.readouterr().err


def test_sections_are_frozen():
    params = load_params(REPO / "params.yaml")
    with pytest.raises(Exception, match="frozen"):
        params.train.epochs = 1  # type: ignore[misc]
