

def test_load_stack_three_windows_and_2p5d_neighbours(tmp_path):
    import numpy as np
    import pytest
    from PIL import Image

    from medpipe.errors import DataError, UserError
    from medpipe.transforms.io import LoadStackd, channel_indices

    imgs = {}
    for name, v in (("a", 10), ("b", 20), ("c", 30)):
        arr = np.zeros((8, 8, 3), np.uint8)
        arr[..., 0], arr[..., 1], arr[..., 2] = v, v + 1, v + 2
        Image.fromarray(arr).save(tmp_path / f"{name}.png")
        imgs[name] = str(tmp_path / f"{name}.png")
    rec = {"image": imgs["b"], "image_prev": imgs["a"], "image_next": imgs["c"]}
    one = LoadStackd("image")(rec)["image"]
    assert one.shape == (3, 8, 8) and one[:, 0, 0].tolist() == [20, 21, 22]
    ctx = LoadStackd("image", context=1)(rec)["image"]
    assert ctx.shape == (9, 8, 8) and ctx[:, 0, 0].tolist() == [10, 11, 12, 20, 21, 22, 30, 31, 32]
    brain = LoadStackd("image", channels=[0], context=1)(rec)["image"]
    assert brain[:, 0, 0].tolist() == [10, 20, 30]
    # a series end (the neighbour is the slice itself) or no neighbours: the slice repeated
    edge = LoadStackd("image", channels=[0], context=1)({"image": imgs["a"], "image_prev": imgs["a"]})["image"]
    assert edge[:, 0, 0].tolist() == [10, 10, 10]
    # arrays (inference on DICOM/NIfTI): (H, W, C) like the PNGs
    arr = LoadStackd("image", context=1)({"image": np.full((8, 8, 3), 5, np.uint8),
                                          "image_prev": np.full((8, 8, 3), 4, np.uint8)})["image"]
    assert arr.shape == (9, 8, 8) and arr[:, 0, 0].tolist() == [4, 4, 4, 5, 5, 5, 5, 5, 5]
    # a one-window slice (PHE-SICH) given to a three-window model: a message saying what to do
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "gray.png")
    with pytest.raises(DataError, match="window_channels"):
        LoadStackd("image", channels=[0, 1, 2])({"image": str(tmp_path / "gray.png")})
    spec = {"channels": 3, "window_channels": ["brain", "subdural", "soft_tissue"]}
    assert channel_indices(spec, "all") == [0, 1, 2] and channel_indices(spec, "subdural,brain") == [1, 0]
    with pytest.raises(UserError, match="bone not among"):
        channel_indices(spec, ["bone"])
    with pytest.raises(UserError, match="no named windows"):
        channel_indices({"channels": 1}, "brain")
