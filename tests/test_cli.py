import subprocess
import sys

from alignclip_plugins import cli


def test_usage_lists_commands(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in cli.COMMANDS)


def test_unknown_command(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_plugins_command_lists_builtin_and_third_party(probe_plugin_path):
    out = subprocess.run(
        [sys.executable, "-m", "alignclip_plugins", "plugins"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "label_smoothing" in out.stdout and "losses: label-smoothing" in out.stdout
    assert "probe" in out.stdout and "losses: probe-clip" in out.stdout
    assert "attach_modules" in out.stdout  # the probe plugin's hooks are listed
