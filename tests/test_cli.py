"""The ``nanonb`` command line's argument parser (issue 16: usage errors list the commands)."""

import pytest

from nanonb.cli import main


@pytest.mark.parametrize("argv, expected", [
    (["--bogus"], "unrecognized arguments: --bogus; choose a command: quickstart"),
    ([], "choose a command: quickstart (meta-learn nanoalloy mixing energies"),
    (["quickstart", "--bogus"], "unrecognized arguments: --bogus; see nanonb quickstart --help"),
])
def test_usage_errors_list_the_commands(argv, expected, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and expected in err and "required: cmd" not in err
    assert "bench (run a benchmark protocol" in err or argv[:1] == ["quickstart"]
