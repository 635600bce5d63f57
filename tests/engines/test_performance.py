"""The GPU path's helpers (medpipe.engines.performance): settings in force, channels-last, pinned memory,
cuDNN autotuning, and torch.compile for training only (the checkpoints keep the plain module's keys)."""

from __future__ import annotations

import pytest
import torch

from medpipe.engines import performance as P
from medpipe.errors import UserError


def _net(dims: int = 2) -> torch.nn.Module:
    conv, bn, pool = ((torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.AdaptiveAvgPool2d) if dims == 2 else
                      (torch.nn.Conv3d, torch.nn.BatchNorm3d, torch.nn.AdaptiveAvgPool3d))
    return torch.nn.Sequential(conv(2, 4, 3, padding=1), bn(4), torch.nn.ReLU(), pool(1), torch.nn.Flatten(),
                               torch.nn.Linear(4, 2))


@pytest.mark.parametrize("device, expect", [
    # on CPU the CUDA-only settings are not in force whatever was asked: CPU runs stay as they were
    ("cpu", {"amp": False, "cudnn_benchmark": False, "pin_memory": False}),
    ("cuda", {"amp": True, "cudnn_benchmark": True, "pin_memory": True}),
    ("cuda:1", {"amp": True, "cudnn_benchmark": True, "pin_memory": True}),
])
def test_settings_in_force_depend_on_the_device(device, expect):
    s = P.settings(device, amp=True, channels_last=True, cudnn_benchmark=True, pin_memory=True)
    assert {k: s[k] for k in expect} == expect
    assert s["channels_last"] is True and s["compile"] is False and s["compile_kwargs"] is None
    assert s["device"] == device


def test_settings_read_command_line_flags_and_refuse_other_values():
    s = P.settings("cpu", channels_last="true", compile="false", cudnn_benchmark="False", pin_memory=0)
    assert (s["channels_last"], s["compile"], s["cudnn_benchmark"], s["pin_memory"]) == (True, False, False, False)
    with pytest.raises(UserError, match=r"--channels_last 'yes please': expected true or false"):
        P.settings("cpu", channels_last="yes please")


def test_compile_backend_is_checked():
    s = P.settings("cpu", compile=True, compile_backend="aot_eager")
    assert s["compile"] and s["compile_kwargs"] == {"backend": "aot_eager"}
    with pytest.raises(UserError, match=r"--compile_backend aot_eagr: not a torch.compile backend; did you mean aot_eager"):
        P.settings("cpu", compile=True, compile_backend="aot_eagr")
    assert P.settings("cpu", compile=False, compile_backend="anything")["compile_kwargs"] is None  # unused: unchecked


def test_inductor_on_cpu_without_a_compiler_is_refused_with_the_way_out(monkeypatch):
    monkeypatch.setattr(P, "c_compiler", lambda: None)
    with pytest.raises(UserError, match="no C\\+\\+ compiler.*--compile_backend aot_eager"):
        P.settings("cpu", compile=True)
    assert P.settings("cuda", compile=True)["compile_kwargs"] == {"backend": "inductor"}  # GPU kernels: Triton


@pytest.mark.parametrize("dims, fmt", [(2, torch.channels_last), (3, torch.channels_last_3d)])
def test_training_network_converts_in_place_to_the_format_of_its_convolutions(dims, fmt):
    net = _net(dims)
    params = list(net.parameters())
    assert P.memory_format_of(net) is fmt
    out = P.training_network(net, {"channels_last": True})
    assert out is net and list(net.parameters()) == params  # same objects: the optimizer's and the evaluator's
    assert all(p.is_contiguous(memory_format=fmt) for p in params if p.dim() == dims + 2)
    assert not params[0].is_contiguous()  # really converted (a 2-channel-input conv weight is not contiguous after)


def test_training_network_leaves_the_network_alone_when_off_and_converts_through_a_ddp_wrapper():
    net = _net()
    P.training_network(net, {"channels_last": False})
    assert net[0].weight.is_contiguous()

    class Wrapper(torch.nn.Module):  # what DistributedDataParallel exposes: .module
        def __init__(self, m):
            super().__init__()
            self.module = m

    w = Wrapper(net)
    assert P.training_network(w, {"channels_last": True}) is w
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_channels_last_refuses_mixed_convolutions_and_ignores_networks_without_any():
    mixed = torch.nn.ModuleList([torch.nn.Conv2d(1, 2, 3), torch.nn.Conv3d(1, 2, 3)])
    with pytest.raises(UserError, match="both 2-D and 3-D convolution weights"):
        P.training_network(mixed, {"channels_last": True})
    mlp = torch.nn.Linear(3, 2)
    assert P.memory_format_of(mlp) is None and P.training_network(mlp, {"channels_last": True}) is mlp


def test_prepare_batch_puts_images_in_channels_last_and_leaves_labels():
    from monai.engines import default_prepare_batch

    assert P.prepare_batch({"channels_last": False}) is default_prepare_batch
    prep = P.prepare_batch({"channels_last": True})
    x, y = prep({"image": torch.randn(2, 3, 8, 8), "label": torch.tensor([0, 1])}, "cpu", False)
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    assert torch.equal(y, torch.tensor([0, 1]))
    x3, m = prep({"image": torch.randn(2, 2, 4, 4, 4), "label": torch.zeros(2, 1, 4, 4, 4)}, "cpu", False)
    assert x3.is_contiguous(memory_format=torch.channels_last_3d) and m.is_contiguous()


def test_loader_sets_pin_memory_on_both_ways():
    from torch.utils.data import DataLoader

    dl = DataLoader(list(range(4)), batch_size=2)
    assert P.loader(dl, {"pin_memory": True}) is dl and dl.pin_memory is True
    assert P.loader(dl, {"pin_memory": False}).pin_memory is False
    assert [b.tolist() for b in dl] == [[0, 1], [2, 3]]  # still a working loader
    assert P.loader(None, {"pin_memory": True}) is None


def test_setup_backends_turns_cudnn_autotuning_on_only_when_in_force():
    old = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        assert P.setup_backends(P.settings("cpu", cudnn_benchmark=True)) is True
        assert torch.backends.cudnn.benchmark is False  # no-op on CPU
        P.setup_backends(P.settings("cuda", cudnn_benchmark=True))
        assert torch.backends.cudnn.benchmark is True
    finally:
        torch.backends.cudnn.benchmark = old


def test_compile_trains_a_compiled_copy_while_the_checkpoints_keep_plain_keys():
    """The skeleton's wiring: MONAI's trainer compiles its own copy (torch.compile prefixes every state-dict key
    with ``_orig_mod.``); the evaluator and the savers get the plain network, whose weights the copy trains."""
    from monai.engines import SupervisedTrainer

    from medpipe.networks.weights import InferenceView, load_weights

    torch.manual_seed(0)
    net = _net()
    perf = P.settings("cpu", channels_last=True, compile=True, compile_backend="eager")
    data = [{"image": torch.randn(4, 2, 8, 8), "label": torch.tensor([0, 1, 0, 1])} for _ in range(2)]
    before = net[0].weight.detach().clone()
    trainer = SupervisedTrainer(
        device="cpu", max_epochs=1, train_data_loader=P.loader(data, perf), epoch_length=2,
        network=P.training_network(net, perf), optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        loss_function=torch.nn.CrossEntropyLoss(), prepare_batch=P.prepare_batch(perf),
        compile=perf["compile"], compile_kwargs=perf["compile_kwargs"])
    trainer.run()
    assert isinstance(trainer.network, torch._dynamo.eval_frame.OptimizedModule) and trainer.network._orig_mod is net
    assert all(k.startswith("_orig_mod.") for k in trainer.network.state_dict())  # the hazard the wiring avoids
    state = InferenceView(net).state_dict()
    assert not any("_orig_mod" in k for k in state) and not torch.equal(state["0.weight"], before)  # trained
    fresh = _net()
    load_weights(fresh, state)  # strict: loads into the eager network as if never compiled
    assert torch.equal(fresh[0].weight, net[0].weight)


def test_running_settings_reads_the_config_being_run():
    """What ``distributed.wrap`` uses to convert the network before DDP builds its gradient buckets."""
    from monai.bundle import ConfigParser

    assert P.running_settings() is None  # outside a config
    ids = {"device": "cpu", "amp": False, "channels_last": True, "cudnn_benchmark": True, "pin_memory": True,
           "compile": False, "compile_backend": "inductor"}
    perf = {"_target_": "medpipe.engines.performance.settings", **{k: f"@{k}" for k in ids}}
    probe = {"_target_": "medpipe.engines.performance.running_settings"}
    p = ConfigParser({**ids, "engine": {"performance": perf}, "probe": probe})
    got = p.get_parsed_content("probe")
    assert got["channels_last"] is True and got["cudnn_benchmark"] is False  # in force on CPU: off
    p = ConfigParser({"device": "cpu", "probe": probe})
    assert p.get_parsed_content("probe") is None  # a config without the GPU-path ids


@pytest.mark.parametrize("native", [True, False])
def test_amp_on_cpu_is_bfloat16_autocast_only_where_the_cpu_has_it(monkeypatch, caplog, native):
    monkeypatch.setattr(P, "cpu_has_bf16", lambda: native)
    s = P.settings("cpu", amp=True)
    # MONAI's engines autocast to CUDA only: they never get amp on CPU; the skeleton's CPU autocast does
    assert s["amp"] is False and s["cpu_bf16"] is native
    assert ("stays float32" in caplog.text) is (not native)
    assert P.settings("cpu", amp=False)["cpu_bf16"] is False
    assert P.settings("cuda", amp=True)["cpu_bf16"] is False


def test_cpu_bf16_training_network_runs_in_bfloat16_and_keeps_float32_weights_and_keys():
    import copy

    torch.manual_seed(0)
    net = _net()
    keys = list(net.state_dict())
    x = torch.randn(3, 2, 8, 8)
    eager = net(x)
    seen = []
    net[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    out = P.training_network(net, {"cpu_bf16": True, "channels_last": False})
    assert out is net and list(net.state_dict()) == keys
    assert all(p.dtype == torch.float32 for p in net.parameters())
    y = net(x)
    assert seen == [torch.bfloat16]  # the convolution ran in bfloat16 ...
    assert y.dtype == torch.float32  # ... and the loss gets float32
    assert torch.allclose(y, eager, atol=0.05) and not torch.equal(y, eager)
    P.training_network(net, {"cpu_bf16": True})  # applied twice: still one autocast layer
    assert net.forward.forward.__self__ is net
    y.sum().backward()
    assert net[0].weight.grad is not None and net[0].weight.grad.dtype == torch.float32
    twin = copy.deepcopy(net)  # e.g. a saved copy: bound to the copy, not to the original
    assert twin.forward.forward.__self__ is twin
