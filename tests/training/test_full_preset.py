"""The ``full`` preset (512 px, one GPU) builds and takes a real training step; on a CPU this is slow, so it is kept
out of the default run (the tiny preset's tests cover the same code). Run it with ``pytest -m slow``."""

import dataclasses
import resource

import pytest
import torch

from selfie_avatar.losses import resolve_loss_weights
from selfie_avatar.training.module import AvatarModule
from selfie_avatar.training.presets import get_preset


@pytest.mark.slow
def test_one_full_preset_step_at_512_px(tmp_path):
    import lightning as L
    from torch.utils.data import DataLoader

    p = get_preset("full")
    model = dataclasses.replace(p.model, num_frames=4, use_time_code=True)
    assert model.size == 512
    module = AvatarModule(model=dataclasses.asdict(model), loss_weights=resolve_loss_weights(), lr_g=p.lr_g,
                          lr_d=p.lr_d, freeze_after=p.freeze_after, r1_interval=1, feature_window=p.feature_window)
    module.set_background_plate(torch.zeros(3, 512, 512))
    before = {k: v.clone() for k, v in module.generator.image_generator.state_dict().items()}
    trainer = L.Trainer(accelerator="auto", devices=1, max_steps=1, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=str(tmp_path))
    g = torch.Generator().manual_seed(0)
    uv = torch.rand(2, 3, 512, 512, generator=g)
    uv[:, 2] = (uv[:, 2] > 0.5).float()
    batch = {"image": torch.rand(2, 3, 512, 512, generator=g) * 2 - 1,
             "render": torch.rand(2, 3, 512, 512, generator=g) * 2 - 1, "uv": uv,
             "matte": torch.rand(2, 1, 512, 512, generator=g), "face_mask": uv[:, 2:3],
             "frame_index": torch.tensor([0, 1])}
    data = [{k: v[i] for k, v in batch.items()} for i in range(2)]
    trainer.fit(module, train_dataloaders=DataLoader(data, batch_size=2))  # R1 included (interval 1)
    assert int(module.step) == 1
    after = module.generator.image_generator.state_dict()
    assert any(not torch.equal(before[k], after[k].cpu()) for k in before)  # the step updated the generator
    peak = (torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available()
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    print(f"full preset, one step at batch 2 with R1: peak memory {peak:.1f} GiB "
          f"({'CUDA allocated' if torch.cuda.is_available() else 'process RSS'})")
