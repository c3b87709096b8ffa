"""`python -m vivit.convert hf|scenic SRC OUT.pt [--model NAME] [key=value ...]` (console: vivit-convert).

Official ViViT checkpoints (Hugging Face, Scenic) into this project's self-describing layout; the conversion
itself is vivit.weights.convert, whose docstring says what each source may be.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from vivit.weights import convert as conversion
from vivit.weights.convert import convert_hf, convert_scenic, read_class_names


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m vivit.convert",
        description=conversion.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("format", choices=("hf", "scenic"), help="the checkpoint's origin")
    parser.add_argument(
        "src", help="HF directory / weights file / hub name (org/name), or the Scenic `checkpoint` file"
    )
    parser.add_argument("out", help="the converted checkpoint to write (.pt)")
    parser.add_argument("--model", help="a zoo model name (required for scenic; hf default: vivit_b_st)")
    parser.add_argument(
        "--classes",
        help="scenic: a file of class names, one per line in label order (hf: read from config.json's id2label)",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="model config overrides")
    args = parser.parse_intermixed_args(argv)  # overrides may come after --model
    try:
        if args.format == "hf":
            model = convert_hf(args.src, args.out, args.model, args.overrides)
        else:
            if not args.model:
                parser.error(
                    "scenic needs --model NAME (e.g. vivit_b_st, vivit_l_fe; a zoo name vivit_<size>_<variant>)"
                )
            classes = read_class_names(args.classes) if args.classes else None
            model = convert_scenic(args.src, args.out, args.model, args.overrides, classes)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    count = sum(p.numel() for p in model.parameters())
    print(
        f"wrote {args.out}: {type(model).__name__}, {count:,} parameters, num_classes={model.num_classes}, "
        f"{model.num_frames} frames at {model.img_size}px. Inputs: (B, C, T, H, W) in [-1, 1]."
    )


if __name__ == "__main__":
    main()
