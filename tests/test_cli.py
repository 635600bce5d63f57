"""The CLI starts fast and imports no heavy library for help or prepare."""

import subprocess
import sys
import time

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize("argv", [["--help"], ["prepare", "--help"], ["synth", "--help"]])
def test_help_is_fast_and_light(argv):
    code = ("import sys, runpy; sys.argv = ['medpipe'] + %r\n"
            "try:\n    runpy.run_module('medpipe', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'monai', 'ultralytics', 'pandas', 'numpy') if m in sys.modules]\n"
            "print('HEAVY', heavy)\n" % argv)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - t0
    assert "HEAVY []" in out.stdout, out.stdout[-500:]
    assert "example" in out.stdout.lower() or argv == ["--help"]
    assert elapsed < 3.0  # interpreter start included; typically ~0.1 s


def test_prepare_does_not_import_torch(png_dataset, tmp_path):
    src, _ = png_dataset
    code = ("import sys\nfrom medpipe.cli import main\n"
            f"rc = main(['prepare', 'phe-sich', '--src', {str(src)!r}, '--out', {str(tmp_path / 'o')!r}, '--folds', '2'])\n"
            "print('RC', rc, 'TORCH', 'torch' in sys.modules, 'MONAI', 'monai' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert "RC 0 TORCH False MONAI False" in out.stdout, out.stdout + out.stderr
    assert "records: 16 slices from 5 patients" in out.stdout


def test_no_command_prints_help(capsys):
    from medpipe.cli import main

    assert main([]) == 2
    assert "prepare" in capsys.readouterr().out
