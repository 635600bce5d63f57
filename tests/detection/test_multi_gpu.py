"""Multi-GPU training of the ultralytics-engine bundles: multi_gpu_train.json makes ultralytics' own DDP train
on every visible GPU (``device=[0, 1, ...]``); on a machine without 2 GPUs, or under torchrun, it is refused."""

from __future__ import annotations

import pytest

from medpipe.detection.training import YoloTrainer, train_device
from medpipe.errors import UserError
from tests.conftest import REPO


@pytest.fixture
def gpus(monkeypatch):
    """``gpus(n)``: make torch report ``n`` CUDA GPUs."""
    import torch

    def set_count(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    return set_count


@pytest.mark.parametrize("device, distributed, n, expect", [
    ("cpu", False, 0, "cpu"),
    ("cuda:1", False, 2, "1"),
    ("cuda", True, 2, [0, 1]),
    ("cuda:0", True, 4, [0, 1, 2, 3]),  # every visible GPU (CUDA_VISIBLE_DEVICES chooses them)
])
def test_train_device(gpus, device, distributed, n, expect):
    gpus(n)
    assert train_device(device, distributed) == expect


def test_trainer_hands_ultralytics_the_gpu_list(gpus, tmp_path):
    gpus(2)
    kw = YoloTrainer(str(tmp_path / "data.yaml"), str(tmp_path), device="cuda", distributed=True,
                     time_limit_s=36, args={"lr0": 0.005}).train_kwargs()
    assert kw["device"] == [0, 1] and kw["time"] == 0.01 and kw["lr0"] == 0.005 and kw["project"] == str(tmp_path)
    assert YoloTrainer(str(tmp_path / "data.yaml"), str(tmp_path), device="cuda").train_kwargs()["device"] == "0"


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_gpus_is_refused_naming_the_count(gpus, n):
    gpus(n)
    with pytest.raises(UserError, match=rf"multi_gpu_train.json \(distributed: true\): multi-GPU training needs at "
                                        rf"least 2 CUDA GPUs and this machine has {n} .*leave --distributed false"):
        train_device("cuda" if n else "cpu", True)


def test_cpu_device_and_torchrun_are_refused(gpus, monkeypatch):
    gpus(2)
    with pytest.raises(UserError, match="--device cpu: multi-GPU training runs on the 2 CUDA GPUs"):
        train_device("cpu", True)
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(UserError, match="not started with torchrun: ultralytics starts one process per GPU itself"):
        train_device("cuda", True)


@pytest.mark.parametrize("bundle", ["sich_det", "cxr_pneumonia_det"])
def test_the_overlay_resolves_to_the_gpu_list_and_refuses_without_gpus(gpus, monkeypatch, bundle):
    """bundles/B/configs/multi_gpu_train.json on train.json: the trainer gets ``distributed`` and the training
    initialize step that checks the devices returns ultralytics' device list (or refuses, before any file)."""
    from monai.bundle import ConfigParser

    monkeypatch.chdir(REPO)
    files = [f"bundles/{bundle}/configs/train.json", f"bundles/{bundle}/configs/multi_gpu_train.json"]

    def parsed(*ids):
        p = ConfigParser()
        p.read_config(files)
        i = p["initialize"].index("%bundles/common/configs/yolo.json#check_devices")
        return [p.get_parsed_content(k.format(i=i)) for k in ids]

    gpus(2)
    assert parsed("distributed", "trainer#distributed", "initialize#{i}") == [True, True, [0, 1]]
    gpus(0)
    with pytest.raises(RuntimeError) as err:
        parsed("initialize#{i}")
    from medpipe.errors import find_user_error

    assert "this machine has 0" in str(find_user_error(err.value))


def test_under_ultralytics_ddp_only_rank_0_writes_the_epoch_records(tmp_path, monkeypatch):
    """Ultralytics pickles the epoch callback into every DDP process: rank 1 must leave the files to rank 0."""
    from types import SimpleNamespace

    csv = tmp_path / "results.csv"
    csv.write_text("epoch,time,train/box_loss,metrics/mAP50(B)\n1,5,2.0,0.1\n")
    stub = SimpleNamespace(csv=csv, epoch=0, epochs=3, fitness=0.1, best_fitness=0.1)
    t = YoloTrainer(str(tmp_path / "data.yaml"), str(tmp_path / "run"), distributed=True)
    (tmp_path / "run").mkdir()  # as run() does
    monkeypatch.setenv("RANK", "1")
    t._epoch_end(stub)
    assert not (tmp_path / "run/history.json").exists() and not (tmp_path / "run/tb").exists()
    monkeypatch.setenv("RANK", "0")
    t._epoch_end(stub)
    assert '"map50"' in (tmp_path / "run/history.json").read_text() and list((tmp_path / "run/tb").iterdir())
    t._writer.close()
