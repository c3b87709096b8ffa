"""Frames -> model tensor, with torchvision.transforms.v2 on `tv_tensors.Video`.

A v2 transform draws its random parameters once per call, so every frame of a clip gets the same crop,
flip and colour change. The order follows scenic's training pipeline (DMVR): resize the short side (done
by the reader's decoder) -> scale jitter -> random crop -> horizontal flip -> RandAugment (uint8) ->
[0, 1] -> colour augment (only without RandAugment, as scenic) -> normalise. Evaluation: resize the short side
-> centre crop, or scenic's three spatial crops (left/centre/right if W > H, else top/centre/bottom).

Two transforms are written here because torchvision's differ from the official ones on video:
`VideoRandAugment` (torchvision's RandAugment has geometric ops, no Invert/Cutout/SolarizeAdd, signed
magnitudes, and per-frame statistics for Equalize/AutoContrast) and `ColourAugment` (DMVR's additive
brightness and fixed order, which v2.ColorJitter does not offer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F


def to_video(frames: np.ndarray | torch.Tensor) -> tv_tensors.Video:
    """uint8 (T, H, W, 3) frames from the reader -> `tv_tensors.Video` (T, 3, H, W)."""
    frames = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    return tv_tensors.Video(frames.permute(0, 3, 1, 2))


class ScaleJitter(v2.Transform):
    """Resize H and W by independent factors ~ U[low, high) (DMVR `scale_jitter_augm`, which also
    jitters the aspect ratio); never below `min_size` so the following crop always fits."""

    _transformed_types = (tv_tensors.Video,)

    def __init__(self, low: float = 0.9, high: float = 1.33, min_size: int = 0) -> None:
        super().__init__()
        self.low, self.high, self.min_size = low, high, min_size

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = flat_inputs[0].shape[-2:]
        fy, fx = (torch.empty(2).uniform_(self.low, self.high)).tolist()
        return {"size": [max(int(height * fy), self.min_size), max(int(width * fx), self.min_size)]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return F.resize(inpt, params["size"], antialias=True)


class ColourAugment(v2.Transform):
    """DMVR's `color_default_augm` on a float clip in [0, 1], the same change for every frame: with
    probability `p`, brightness += U(-32/255, 32/255), saturation x U(0.6, 1.4), contrast x U(0.6, 1.4),
    hue += U(-0.2, 0.2), clip to [0, 1]; then grayscale with probability `p_gray`."""

    _transformed_types = (tv_tensors.Video,)

    def __init__(
        self,
        p: float = 0.8,
        brightness: float = 32 / 255,
        saturation: Sequence[float] = (0.6, 1.4),
        contrast: Sequence[float] = (0.6, 1.4),
        hue: float = 0.2,
        p_gray: float = 0.1,
    ) -> None:
        super().__init__()
        self.p, self.brightness, self.saturation = p, brightness, tuple(saturation)
        self.contrast, self.hue, self.p_gray = tuple(contrast), hue, p_gray

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        u = torch.rand(6).tolist()
        return {
            "jitter": u[0] < self.p,
            "brightness": (2 * u[1] - 1) * self.brightness,
            "saturation": self.saturation[0] + u[2] * (self.saturation[1] - self.saturation[0]),
            "contrast": self.contrast[0] + u[3] * (self.contrast[1] - self.contrast[0]),
            "hue": (2 * u[4] - 1) * self.hue,
            "gray": u[5] < self.p_gray,
        }

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        # plain tensor: F.rgb_to_grayscale has no kernel for tv_tensors.Video (T, 3, H, W is an image batch)
        video = inpt.as_subclass(torch.Tensor)
        if params["jitter"]:
            video = (video + params["brightness"]).clamp(0, 1)
            video = F.adjust_saturation(video, params["saturation"])
            video = F.adjust_contrast(video, params["contrast"])
            video = F.adjust_hue(video, params["hue"]).clamp(0, 1)
        if params["gray"]:
            video = F.rgb_to_grayscale(video, num_output_channels=3)
        return tv_tensors.wrap(video, like=inpt)


class VideoRandAugment(v2.Transform):
    """RandAugment with the official ViViT op set (scenic `video_ops.distort_image_with_randaugment`) on a
    uint8 clip. Each of `num_layers` layers applies one op drawn uniformly from Identity + 11
    non-geometric ops, always, with TF Model Garden magnitudes (`_MAX_LEVEL` = 10, so a magnitude above
    10 extrapolates as in the official configs). Clip statistics (AutoContrast, Equalize, Contrast) are
    computed over the whole clip, as scenic does by reshaping the clip to one (T*H, W) image.

    `scenic_compat=True` reproduces two quirks of scenic's version (scenic/dataset_lib/video_ops.py on TF-Models'
    augment.py): Contrast blends toward (pixel count / 256), clipped to 255 and truncated, instead of the mean grey
    level (TF-Models sums the histogram's counts, not its values: 196 for a 224 x 224 image, 255 for any clip of
    more than 65,280 pixels), and Cutout fills its square with 0 instead of 128. The default is the intended op.
    """

    _transformed_types = (tv_tensors.Video,)
    OPS = (
        "Identity",
        "AutoContrast",
        "Equalize",
        "Invert",
        "Posterize",
        "Solarize",
        "Color",
        "Contrast",
        "Brightness",
        "Sharpness",
        "Cutout",
        "SolarizeAdd",
    )

    def __init__(self, num_layers: int = 2, magnitude: float = 15, scenic_compat: bool = False) -> None:
        super().__init__()
        self.num_layers, self.magnitude, self.scenic_compat = num_layers, magnitude, scenic_compat
        # TF-Models' ops take a fill of 128; scenic's video Cutout drops that argument and fills with 0
        self.fill = 0 if scenic_compat else 128

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = flat_inputs[0].shape[-2:]
        ops = [self.OPS[int(i)] for i in torch.randint(len(self.OPS), (self.num_layers,))]
        centre = (int(torch.randint(height, ())), int(torch.randint(width, ())))
        return {"ops": ops, "cutout_centre": centre}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if inpt.dtype != torch.uint8:
            raise TypeError(f"VideoRandAugment expects a uint8 clip, got {inpt.dtype}")
        video = inpt.as_subclass(torch.Tensor)
        for op in params["ops"]:
            video = self._apply(op, video, params["cutout_centre"])
        return tv_tensors.wrap(video, like=inpt)

    def _apply(self, op: str, video: torch.Tensor, centre: tuple[int, int]) -> torch.Tensor:
        level = self.magnitude / 10.0
        if op == "Identity":
            return video
        if op == "Sharpness":  # a local filter: per frame, so it never mixes neighbouring frames
            return F.adjust_sharpness(video, level * 1.8 + 0.1)
        if op == "Cutout":  # the same square in every frame (grey; black with scenic_compat)
            pad = int(level * 40)
            (cy, cx), (height, width) = centre, video.shape[-2:]
            video = video.clone()
            video[..., max(cy - pad, 0) : min(cy + pad, height), max(cx - pad, 0) : min(cx + pad, width)] = self.fill
            return video
        t, c, h, w = video.shape
        image = video.permute(1, 0, 2, 3).reshape(c, t * h, w)  # the clip as one image
        if op == "Contrast" and self.scenic_compat:
            image = _tf_models_contrast(image, level * 1.8 + 0.1)
        else:
            image = self._apply_image(op, image, level)
        return image.reshape(c, t, h, w).permute(1, 0, 2, 3).contiguous()

    @staticmethod
    def _apply_image(op: str, image: torch.Tensor, level: float) -> torch.Tensor:
        enhance = level * 1.8 + 0.1
        if op == "AutoContrast":
            return F.autocontrast(image)
        if op == "Equalize":
            return F.equalize(image)
        if op == "Invert":
            return F.invert(image)
        if op == "Posterize":
            return F.posterize(image, min(max(int(level * 4), 0), 8))
        if op == "Solarize":
            threshold = int(level * 256)
            return F.solarize(image, threshold) if threshold <= 255 else image  # above 255: a no-op, as in TF
        if op == "SolarizeAdd":
            added = (image.int() + int(level * 110)).clamp(0, 255).to(torch.uint8)
            return torch.where(image < 128, added, image)
        if op == "Color":
            return F.adjust_saturation(image, enhance)
        if op == "Contrast":
            return F.adjust_contrast(image, enhance)
        if op == "Brightness":
            return F.adjust_brightness(image, enhance)
        raise ValueError(f"unknown RandAugment op {op!r}")


def _tf_models_contrast(image: torch.Tensor, factor: float) -> torch.Tensor:
    """TF-Models' `contrast` on a uint8 (C, H, W) image: a blend toward min(H * W / 256, 255) truncated to an
    integer (the pixel count over 256 where the grey mean was meant), as scenic's RandAugment runs it."""
    degenerate = float(int(min(image.shape[-2] * image.shape[-1] / 256.0, 255.0)))
    blended = degenerate + factor * (image.float() - degenerate)
    return blended.clamp(0, 255).to(torch.uint8)  # TF casts by truncation, as .to(uint8) does


class ToModelInput(v2.Transform):
    """Video (T, C, H, W) -> plain tensor (C, T, H, W), the models' layout."""

    _transformed_types = (tv_tensors.Video,)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return inpt.as_subclass(torch.Tensor).transpose(0, 1).contiguous()


def _normalise(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]


def train_transform(
    crop_size: int,
    scale_jitter: Sequence[float] | None = (0.9, 1.33),
    hflip: bool = True,
    randaugment: dict | None = None,
    colour_augment: bool = False,
    mean: Sequence[float] = (0.5, 0.5, 0.5),
    std: Sequence[float] = (0.5, 0.5, 0.5),
    colour_drop: float = 0.1,
    randaugment_scenic_compat: bool = False,
) -> v2.Compose:
    """Training augmentation of a short-side-resized uint8 clip; returns (C, T, crop, crop) float. `colour_drop`:
    the colour augment's grayscale probability; `randaugment_scenic_compat`: scenic's RandAugment quirks."""
    steps: list[v2.Transform] = []
    if scale_jitter:
        steps.append(ScaleJitter(*scale_jitter, min_size=crop_size))
    steps.append(v2.RandomCrop(crop_size, pad_if_needed=True))
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    if randaugment:
        steps.append(VideoRandAugment(**{"scenic_compat": randaugment_scenic_compat, **dict(randaugment)}))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if colour_augment and not randaugment:  # scenic runs one of the two: RandAugment when it is configured
        steps.append(ColourAugment(p_gray=colour_drop))
    steps += [v2.Normalize(list(mean), list(std)), ToModelInput()]
    return v2.Compose(steps)


def crop_offsets(size: int, crop: int, num_crops: int) -> list[int]:
    """Start offsets along one axis: the centre ((size - crop) // 2), or start/centre/end for 3 crops."""
    centre = (size - crop) // 2
    return [centre] if num_crops == 1 else [0, centre, size - crop]


class EvalTransform:
    """Evaluation: crops of a short-side-resized uint8 clip; returns (num_crops, C, T, crop, crop) float.
    Three crops run along the long side (left/centre/right if W > H, else top/centre/bottom)."""

    def __init__(
        self,
        crop_size: int,
        num_crops: int = 1,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
    ) -> None:
        self.crop_size, self.num_crops = crop_size, num_crops
        self.finish = v2.Compose(_normalise(mean, std) + [ToModelInput()])

    def __call__(self, video: tv_tensors.Video) -> torch.Tensor:
        height, width = video.shape[-2:]
        if min(height, width) < self.crop_size:  # smaller than the crop: grow the short side to fit
            video = F.resize(video, self.crop_size, antialias=True)
            height, width = video.shape[-2:]
        size = self.crop_size
        tops, lefts = [(height - size) // 2], [(width - size) // 2]
        if self.num_crops == 3 and width > height:
            lefts = crop_offsets(width, size, 3)
        elif self.num_crops == 3:
            tops = crop_offsets(height, size, 3)
        crops = [F.crop(video, top, left, size, size) for top in tops for left in lefts]
        return torch.stack([self.finish(crop) for crop in crops])
