"""One output-folder policy for every command (issue 29): refuse, overwrite only what is owned,
lock, write atomically, exit codes scripts can trust. Each case was seen by a user first."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from scintilab.cli import main
from scintilab.errors import EXIT_PARTIAL, EXIT_USAGE
from scintilab.outputs import LOCK_SUFFIX, RECORD_FILE, OutputFolder, atomic_write


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """Four studies ingested (a module-wide cohort: these tests only read it)."""
    from conftest import make_cohort

    from scintilab.ingest import ingest

    root = make_cohort(tmp_path_factory.mktemp("cohort"), 4)
    ingest(root / "dicom", root / "labels.csv", root / "annotations", root / "manifest.csv", progress=False)
    return root


def _one_sentence(text: str) -> None:
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1, text


def test_quantify_rerun_is_refused_then_overwrite_leaves_no_stale_report(cohort: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "q"
    assert main(["quantify", str(cohort / "manifest.csv"), "--out", str(out), "--quiet", "--limit", "2"]) == 0
    reports = sorted(p.name for p in (out / "reports").glob("*.html"))
    assert len(reports) == 2 and json.loads((out / RECORD_FILE).read_text())["status"] == "complete"
    (out / "notes.txt").write_text("mine")  # a user's own file in the folder
    capsys.readouterr()
    assert main(["quantify", str(cohort / "manifest.csv"), "--out", str(out), "--quiet", "--limit", "1"]) == EXIT_USAGE
    err = capsys.readouterr().err
    _one_sentence(err)
    assert "--overwrite" in err and str(out) in err
    assert (
        main(["quantify", str(cohort / "manifest.csv"), "--out", str(out), "--quiet", "--limit", "1", "--overwrite"])
        == 0
    )
    left = sorted(p.name for p in (out / "reports").glob("*.html"))
    studies = pd.read_csv(out / "studies.csv")
    assert left == [f"{k}.html" for k in studies["study_key"]] and len(left) == 1  # the other report is gone
    assert (out / "notes.txt").read_text() == "mine"
    assert not list(out.glob("*" + LOCK_SUFFIX)) and not list(out.glob(".*.tmp*"))


def test_quantify_exits_3_and_names_the_list_when_a_study_fails(cohort: Path, tmp_path: Path, capsys) -> None:
    man = pd.read_csv(cohort / "manifest.csv")
    broken = man.copy()
    broken.loc[0, "ant_path"] = "dicom/missing_ant.dcm"
    broken.loc[0, "post_path"] = "dicom/missing_post.dcm"
    path = cohort / "broken_manifest.csv"
    broken.to_csv(path, index=False)
    try:
        code = main(["quantify", str(path), "--out", str(tmp_path / "q"), "--quiet", "--no-reports", "--limit", "2"])
    finally:
        path.unlink()
    out = capsys.readouterr()
    assert code == EXIT_PARTIAL
    assert "1 studies failed" in out.out and "failed.csv" in out.out
    failed = pd.read_csv(tmp_path / "q" / "failed.csv")
    assert failed["study_key"].tolist() == [man.loc[0, "study_key"]]


@pytest.mark.parametrize("command", ["quantify", "audit", "datasets"])
def test_out_under_a_file_is_one_sentence(cohort: Path, tmp_path: Path, capsys, command: str) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    extra = {"quantify": ["--quiet", "--limit", "1"], "audit": [], "datasets": ["--quiet", "--names", "D1"]}[command]
    for out in (blocker, blocker / "sub"):  # --out naming a file, and a folder below a file
        code = main([command, str(cohort / "manifest.csv"), "--out", str(out), *extra])
        err = capsys.readouterr().err
        assert code == EXIT_USAGE
        _one_sentence(err)
        assert str(blocker) in err


def test_lesions_refuses_to_overwrite_and_names_a_folder_given_as_out(cohort: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "lesions.csv"
    out.write_text("earlier table\n")
    assert main(["lesions", str(cohort / "manifest.csv"), "--out", str(out)]) == EXIT_USAGE
    err = capsys.readouterr().err
    _one_sentence(err)
    assert "already exists" in err and out.read_text() == "earlier table\n"
    assert main(["lesions", str(cohort / "manifest.csv"), "--out", str(tmp_path)]) == EXIT_USAGE
    assert "is a folder" in capsys.readouterr().err
    assert main(["lesions", str(cohort / "manifest.csv"), "--out", str(out), "--overwrite"]) == 0
    assert len(pd.read_csv(out)) > 0


def test_audit_overwrite_keeps_the_reviewers_file(cohort: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "audit"
    assert main(["audit", str(cohort / "manifest.csv"), "--out", str(out)]) == 0
    (out / "review.csv").write_text("kind,study_a,study_b,decision,note\n")
    assert main(["audit", str(cohort / "manifest.csv"), "--out", str(out)]) == EXIT_USAGE
    assert "--overwrite" in capsys.readouterr().err
    assert main(["audit", str(cohort / "manifest.csv"), "--out", str(out), "--overwrite"]) == 0
    assert (out / "review.csv").is_file() and (out / "flags.csv").is_file()


def test_a_second_run_into_a_held_folder_is_refused(cohort: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "q"
    with OutputFolder(out, "quantify", ["studies.csv"]):  # another run, still writing
        assert (
            main(["quantify", str(cohort / "manifest.csv"), "--out", str(out), "--quiet", "--limit", "1"]) == EXIT_USAGE
        )
        err = capsys.readouterr().err
        _one_sentence(err)
        assert "another scintilab run is writing here" in err
    assert not (out / "studies.csv").exists()


def test_an_interrupted_write_leaves_the_old_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    path.write_text("a,b\n1,2\n")

    def half(tmp: Path) -> None:
        tmp.write_text("a,b\n")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half)
    assert path.read_text() == "a,b\n1,2\n" and os.listdir(tmp_path) == ["table.csv"]


def test_datasets_rerun_needs_overwrite_but_reuses_its_cache(cohort: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "sets"
    argv = [
        "datasets",
        str(cohort / "manifest.csv"),
        "--out",
        str(out),
        "--names",
        "D1",
        "--image-size",
        "64",
        "16",
        "--quiet",
    ]
    assert main(argv) == 0
    cache = sorted(p.name for p in out.iterdir() if p.name.startswith("D1"))
    assert main(argv) == EXIT_USAGE and "--overwrite" in capsys.readouterr().err
    assert main(argv + ["--overwrite"]) == 0
    assert (
        sorted(p.name for p in out.iterdir() if p.name.startswith("D1")) == cache and (out / "splits_D1.csv").is_file()
    )


def test_synth_refuses_an_earlier_cohort_and_overwrite_leaves_nothing_of_it(tmp_path: Path, capsys) -> None:
    """A rewrite into an earlier cohort kept its case folders (more patients than asked) and
    its manifest (describing a cohort that was gone)."""
    root = tmp_path / "coh"
    assert (
        main(
            [
                "synth",
                str(root),
                "--patients",
                "4",
                "--size",
                "tiny",
                "--matrix",
                "128x32",
                "--variety",
                "narrow",
                "--quiet",
            ]
        )
        == 0
    )
    assert main(["ingest", str(root / "dicom"), "--out", str(root / "manifest.csv"), "--quiet"]) == 0
    (root / "my_notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(["synth", str(root), "--patients", "2", "--size", "tiny", "--quiet"]) == EXIT_USAGE
    err = capsys.readouterr().err
    _one_sentence(err)
    assert "--overwrite" in err
    assert (
        main(
            [
                "synth",
                str(root),
                "--patients",
                "2",
                "--size",
                "tiny",
                "--matrix",
                "128x32",
                "--variety",
                "narrow",
                "--quiet",
                "--overwrite",
            ]
        )
        == 0
    )
    assert len(list((root / "dicom").iterdir())) == 2 and not (root / "manifest.csv").exists()
    assert (root / "my_notes.txt").read_text() == "mine"


def test_train_and_report_name_a_wrong_out(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert main(["train", "--data", str(tmp_path), "--out", str(blocker), "--quiet"]) == EXIT_USAGE
    assert str(tmp_path) in capsys.readouterr().err  # the empty data folder is named first
    assert main(["report", str(tmp_path), "--out", str(blocker)]) == EXIT_USAGE
    err = capsys.readouterr().err
    _one_sentence(err)
    assert "single notebook" in err


def test_ctrl_c_in_train_is_one_line_and_the_rerun_resumes(tmp_cohort_dir, tmp_path: Path) -> None:
    """A real SIGINT to a running ``scintilab train``: exit 130, one line instead of a
    50-line KeyboardInterrupt traceback, and the same command then finishes the run."""
    import signal
    import subprocess
    import sys
    import time

    root = tmp_cohort_dir(6)
    run = tmp_path / "run"
    argv = [
        sys.executable,
        "-m",
        "scintilab",
        "train",
        "--preset",
        "quick",
        "--data",
        str(root),
        "--out",
        str(run),
        "--quiet",
        "--set",
        "image_size=[64,16]",
        "--set",
        'model_options={"width":4,"blocks":[1,1,1,1]}',
        "--set",
        "epochs=12",
        "--set",
        "batch_size=4",
        "--set",
        "n_boot=10",
    ]
    # A job started in the background by a non-interactive shell (``cmd &``, as CI scripts
    # and nohup chains do) inherits SIGINT as ignored, and Python then never raises
    # KeyboardInterrupt: give the child the default disposition a terminal's Ctrl-C meets.
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if (run / "history.csv").is_file() and len(pd.read_csv(run / "history.csv")) >= 1:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "training ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "Traceback" not in err and "interrupted (Ctrl-C)" in err
    done = len(pd.read_csv(run / "history.csv"))
    assert 1 <= done < 12
    again = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert pd.read_csv(run / "history.csv")["epoch"].tolist() == list(range(1, 13))


def test_a_lock_left_by_a_dead_run_is_taken_over(cohort: Path, tmp_path: Path) -> None:
    """A run killed without cleaning up (kill -9, out of memory) must not block the rerun."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    out = tmp_path / "q"
    out.mkdir()
    (out / (".quantify" + LOCK_SUFFIX)).write_text(f"pid {dead.stdout.strip()} since 2026-12-04T00:00:00\n")
    assert main(["quantify", str(cohort / "manifest.csv"), "--out", str(out), "--quiet", "--limit", "1"]) == 0
    assert not (out / (".quantify" + LOCK_SUFFIX)).exists()


def test_a_second_training_into_a_running_run_folder_is_refused(tmp_path: Path) -> None:
    from scintilab.errors import InputError
    from scintilab.outputs import RunLock
    from scintilab.presets import config_from_preset
    from scintilab.training import train

    run = tmp_path / "run"
    run.mkdir()
    lock = RunLock(run / (".train" + LOCK_SUFFIX))
    lock.acquire()  # another training, still running
    try:
        with pytest.raises(InputError, match="another scintilab run is writing here"):
            train(config_from_preset("quick", image_size=(64, 16), epochs=1), run, dataset=None)
    finally:
        lock.release()
    assert not (run / "config.json").exists()
