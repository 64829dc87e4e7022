"""params.yaml loading: typed sections, clear errors for malformed files and bad values."""


import pytest

from helpers import REPO
from vaeops.cli import main
from vaeops.core.errors import ParamsError
from vaeops.core.params import load_params


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
        ("data:\n  dataset: cifar\n", "unknown data set 'cifar'"),
        ("data:\n  seed: one\n", "data.seed: expected an integer"),
        ("data:\n  val_fraction: 0.6\n  test_fraction: 0.5\n", "must be below 1"),
        ("data:\n  colour: blue\n", "unknown key(s) in section 'data': colour"),
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
    assert "unknown data set 'cifar'" in capsys.readouterr().err


def test_missing_params_file(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
