"""The CLI starts fast and imports no heavy library for help or prepare."""

import re
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize("argv", [["--help"], ["prepare", "--help"], ["synth", "--help"],
                                  ["prepare", "phe-sich", "--help"], ["synth", "phe-sich", "--help"]])
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
    assert "records: 16 from 5 patients" in out.stdout


def test_dataset_help_shows_its_own_options_only(capsys):
    """`prepare DATASET --help`: the common options plus the dataset's; other datasets' stay out."""
    from data_prep import specs
    from medpipe.cli import main
    from medpipe.prepare.spec import COMMON_OPTIONS

    all_specs = specs()
    for name, spec in all_specs.items():
        with pytest.raises(SystemExit):
            main(["prepare", name, "--help"])
        text = capsys.readouterr().out
        for flag in ["--src", "--out", "--workers", "--quiet", *(o.flag for o in COMMON_OPTIONS + spec.options)]:
            assert flag in text, (name, flag)
        others = {o.flag for s in all_specs.values() if s is not spec for o in s.options} - {o.flag for o in spec.options}
        assert not [f for f in others if re.search(re.escape(f) + r"(?![\w-])", text)], name  # whole flags
        assert "examples:" in text
    with pytest.raises(SystemExit):
        main(["prepare", "phe-sich", "--help"])
    text = capsys.readouterr().out
    assert "--val-fold" in text and "--subset" in text and "--class-name" in text


def test_no_command_prints_help(capsys):
    from medpipe.cli import main

    assert main([]) == 2
    assert "prepare" in capsys.readouterr().out
