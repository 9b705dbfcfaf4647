"""`keras-colour` command line: train, evaluate, colourise, demo, check."""

import argparse
import logging
import os
import sys


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _train(args):
    from keras_colour.experiment import run

    results = run(args.config, args.set, stage=args.stage, resume=args.resume, overwrite=args.overwrite)
    if results:
        print("metrics:", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in results.items()})
    return 0


def _evaluate(args):
    from keras_colour.experiment import compare_runs

    out = compare_runs(args.runs, args.output, max_images=args.max_images)
    with open(out["markdown"], encoding="utf-8") as f:
        print(f.read())
    print(f"Wrote {out['markdown']}, {out['csv']} and {out['figure']}")
    return 0


def _colourise(args):
    import keras

    from keras_colour.colourise import colourise_paths

    model = keras.models.load_model(args.model, compile=False)
    written, skipped = colourise_paths(
        model, args.inputs, args.output, batch_size=args.batch_size, png_compression=args.png_compression
    )
    print(f"Colourised {len(written)} image(s) into {args.output}; skipped {len(skipped)} unreadable file(s).")
    return 1 if skipped else 0


def _demo(args):
    from keras_colour.config import config_from_dict
    from keras_colour.data import build_datasets

    config = config_from_dict({"data": {"kind": "demo", "image_size": args.image_size, "batch_size": args.batch_size}})
    data = build_datasets(config)
    print(data.summary())
    return 0


def describe(config):
    """One line of what a config resolves to: networks, update protocol, norms, data handling."""
    m, d, t = config.model, config.data, config.train
    return (
        f"{m.generator} / {m.discriminator}; protocol={t.protocol}; norm={m.norm}, spectral_norm={m.spectral_norm}, "
        f"instance_norm={m.instance_norm}; data: {d.kind}, {d.image_size}px, resize={d.resize_method}"
        f"{' +antialias' if d.antialias and d.resize_method != 'nearest' else ''}, flip={d.flip}; "
        f"evaluation: colours={config.evaluation.colours}, "
        f"generator_training_mode={config.evaluation.generator_training_mode}; output_dir={config.output_dir}"
    )


def _check(args):
    from keras_colour.config import ConfigError, load_config

    failed = 0
    for path in args.configs:
        try:
            config = load_config(path, args.set)
        except ConfigError as e:
            print(f"keras-colour: error: {e}", file=sys.stderr)
            failed += 1
            continue
        print(f"{path}: ok ({describe(config)})")
    if failed:
        print(f"{failed} of {len(args.configs)} config(s) have errors.", file=sys.stderr)
    return 1 if failed else 0


def build_parser():
    parser = argparse.ArgumentParser(prog="keras-colour", description=__doc__)
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train (and evaluate) one experiment from a YAML file")
    p.add_argument("config")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. train.epochs=3"
    )
    p.add_argument("--stage", choices=("train", "evaluate", "all"), default="all")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="delete an existing run folder first")
    p.set_defaults(fn=_train)

    p = sub.add_parser("evaluate", help="evaluate runs and write a comparison table and histogram figure")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--output", required=True)
    p.add_argument("--max-images", type=int, default=None)
    p.set_defaults(fn=_evaluate)

    p = sub.add_parser("colourise", help="colourise image files or folders with a generator.keras")
    p.add_argument("--model", required=True)
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--output", required=True)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--png-compression",
        type=int,
        default=1,
        choices=range(10),
        metavar="0-9",
        help="zlib level of the PNGs (default 1: fast)",
    )
    p.set_defaults(fn=_colourise)

    p = sub.add_parser("demo", help="build the built-in demo dataset and summarise its pipeline")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.set_defaults(fn=_demo)

    p = sub.add_parser("check", help="load and validate config files")
    p.add_argument("configs", nargs="+")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(fn=_check)
    return parser


def main(argv=None):
    _quiet_tensorflow()
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    from keras_colour.config import ConfigError
    from keras_colour.errors import FeatureWeightsError, NonFiniteLossError, RunExistsError

    try:
        return args.fn(args)
    except (ConfigError, RunExistsError, NonFiniteLossError, FeatureWeightsError, FileNotFoundError) as e:
        print(f"keras-colour: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
