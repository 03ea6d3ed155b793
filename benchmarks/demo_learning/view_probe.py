"""How legible is the dot in the model's view of the whole scene? A probe of the synthetic zoom task's premise.

    .venv/bin/python benchmarks/demo_learning/view_probe.py [--scenes 200] [--model MODEL]

The model sees each 448-px scene at 112 x 112 (`min_pixels = max_pixels = 12544`). This probe rebuilds that
view exactly from the processor's own output (its `pixel_values`, un-normalised and un-patchified: the
processor's resize is PIL bicubic) and, for every dot of held-out scenes, reads the view pixel at the dot's
centre (`Referent.dot_center` / 4) and names the nearest colour of the dot palette (Euclidean RGB). It prints
how often that names the dot's colour, beside the same reading on PIL's antialiased bilinear resize (what the
task's docstring measured first) and on a crop of the card at 112 px (what the policy sees after boxing it).
A reader that knows where the dot is can therefore read most dots from the whole view; the tiny model does not
(its no-crop RL runs stay at 0.21-0.26, the majority answer scores 0.28): say what is true, not "illegible".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))


def processor_view(processor, image: Image.Image) -> np.ndarray:
    """The RGB image the model sees (H x W x 3, 0-255 floats), rebuilt from the processor's pixel_values."""
    ip = processor.image_processor
    out = ip(images=[image], return_tensors="np")
    t, gh, gw = (int(x) for x in out["image_grid_thw"][0])
    ps, ms, tps = ip.patch_size, ip.merge_size, ip.temporal_patch_size
    patches = out["pixel_values"].reshape(gh // ms, gw // ms, ms, ms, 3, tps, ps, ps)[:, :, :, :, :, 0]
    # (gh/ms, gw/ms, ms, ms, C, ps, ps) -> (C, gh/ms, ms, ps, gw/ms, ms, ps): the inverse of patchify's transpose
    image_chw = patches.transpose(4, 0, 2, 5, 1, 3, 6).reshape(3, gh * ps, gw * ps)
    mean = np.asarray(ip.image_mean, dtype=np.float32)[:, None, None]
    std = np.asarray(ip.image_std, dtype=np.float32)[:, None, None]
    return ((image_chw * std + mean) * 255.0).transpose(1, 2, 0)


def nearest(rgb: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    return min(palette, key=lambda name: float(np.sum((rgb - np.asarray(palette[name], dtype=np.float32)) ** 2)))


def main(argv: list[str] | None = None) -> int:
    from ground_r1.demo.synthetic import DETAIL_PALETTE, SyntheticConfig, generate_scene, record_rng
    from ground_r1.models.loading import load_processor
    from ground_r1 import paths

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    p.add_argument("--scenes", type=int, default=200, help="held-out scenes (3 dots each)")
    p.add_argument("--questions", type=int, default=100, help="the benchmark's held-out questions: their asked dot")
    p.add_argument("--model", default=str(paths.tiny_instruct_dir()), help="whose processor (default: the base)")
    args = p.parse_args(argv)
    cfg = SyntheticConfig()
    palette = {name: DETAIL_PALETTE[name] for name in cfg.details}  # the dot colours scenes are drawn with
    processor = load_processor(args.model, min_pixels=12544, max_pixels=12544)
    side = cfg.view_side
    hits = {"processor view (bicubic)": 0, "PIL bilinear view": 0, "crop of the card (processor)": 0}
    asked = 0
    distance = []
    dots = 0
    for i in range(args.scenes):
        scene, info = generate_scene(record_rng(cfg.seed, "eval", i), cfg)  # the held-out split's scene i
        view = processor_view(processor, scene)
        if i == 0:  # the rebuilt view is the processor's resize: PIL bicubic to 112 x 112, up to rounding
            bicubic = np.asarray(scene.resize((side, side), Image.BICUBIC), dtype=np.float32)
            worst = float(np.abs(view - bicubic).max())
            if worst > 1.0:
                raise RuntimeError(f"the rebuilt view differs from PIL's bicubic resize by {worst:.1f}")
        bilinear = np.asarray(scene.resize((side, side), Image.BILINEAR), dtype=np.float32)
        for ref in info.referents:
            x, y = ref.dot_center
            vx, vy = x * side // scene.width, y * side // scene.height
            dots += 1
            pixel = view[vy, vx]
            distance.append(float(np.linalg.norm(pixel - np.asarray(DETAIL_PALETTE[ref.detail], dtype=np.float32))))
            right = nearest(pixel, palette) == ref.detail
            hits["processor view (bicubic)"] += right
            if i < args.questions and ref is info.target_referent:
                asked += right
            hits["PIL bilinear view"] += nearest(bilinear[vy, vx], palette) == ref.detail
            crop = scene.crop(ref.box)
            crop_view = processor_view(processor, crop)
            cx = (x - ref.box[0]) * crop_view.shape[1] // crop.width
            cy = (y - ref.box[1]) * crop_view.shape[0] // crop.height
            hits["crop of the card (processor)"] += nearest(crop_view[cy, cx], palette) == ref.detail
    print(
        f"{dots} dots of {args.scenes} held-out scenes (default SyntheticConfig, seed {cfg.seed}, split 'eval'); "
        f"the nearest of the {len(palette)} dot colours to the view pixel at the dot's centre is the dot's colour:"
    )
    for name, count in hits.items():
        print(f"  {name:32s} {count / dots:.3f} ({count}/{dots})")
    n = min(args.questions, args.scenes)
    print(f"  the asked dot of the first {n} held-out questions (the benchmark's), processor view: {asked / n:.3f}")
    print(
        f"  RGB distance of that view pixel (processor view) from the dot's true colour: median "
        f"{float(np.median(distance)):.0f}, min {min(distance):.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
