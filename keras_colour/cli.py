"""keras-colour: GAN colourisation (Gorriz et al. 2019, pix2pix, U-Net, feature reconstruction) in Keras 3.

Commands: train, evaluate, colourise (photographs and video), evaluate-video, export, demo, study, serve, check.
`keras-colour COMMAND --help` lists options.
"""

import argparse
import logging
import os
import sys
import warnings

from keras_colour.quiet import loud_tensorflow_import, stderr_silenced

EPILOG = """\
Config keys: every key, its type and default is in keras_colour/config/schema.py; docs/fidelity.md explains the
BBC-fidelity options. A smoke run of a thesis config on small data, for example:
  keras-colour train experiments/gorriz.yaml --set data.image_size=64 --set model.num_downsamples=5 \\
      --set train.epochs=1 --set data.test_per_class=2 --set output_dir=runs/smoke
The demo dataset (skimage's photographs, no download) is cached in $KERAS_COLOUR_CACHE or ~/.cache/keras_colour.
Notebooks: pip install -e ".[notebooks]" and open notebooks/ in Jupyter after the quick-start run.
"""


def _import_tensorflow_quietly():
    """Imports TensorFlow with its C++ start-up lines (absl, oneDNN, CUDA probes) sent to /dev/null."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with stderr_silenced():
        import tensorflow as tf  # noqa: PLC0415

        tf.config.list_physical_devices()  # probes (and complains about) CUDA here, silenced
    tf.get_logger().setLevel("ERROR")
    logging.getLogger("absl").setLevel(logging.WARNING)  # "Sharding callback duration" at every checkpoint
    warnings.filterwarnings("ignore", message="Your input ran out of data")


def _prepare_determinism(args):
    """`train.deterministic` also needs oneDNN off, which TensorFlow reads once, when it is imported."""
    from keras_colour.config import ConfigError, load_config

    try:
        deterministic = load_config(args.config, args.set).train.deterministic
    except ConfigError:
        return  # reported by the command itself
    if deterministic:
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"


def _interrupted(config_path, overrides):
    from keras_colour.config import load_config
    from keras_colour.run_folder import RunFolder

    state = RunFolder(load_config(config_path, overrides).output_dir).read_state() or {}
    done = state.get("completed_epochs", 0)
    return f"interrupted after epoch {done}; continue with --resume" if done else "interrupted before any epoch ended"


def _train(args):
    from keras_colour.experiment import run

    try:
        results = run(args.config, args.set, stage=args.stage, resume=args.resume, overwrite=args.overwrite)
    except KeyboardInterrupt:
        print(f"keras-colour: {_interrupted(args.config, args.set)}", file=sys.stderr)
        return 130
    if results:
        shown = {k: v for k, v in results.items() if not k.endswith("_not_computed")}  # logged above, with the why
        print("metrics:", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in shown.items()})
    return 0


def _evaluate(args):
    from keras_colour.experiment import compare_runs
    from keras_colour.run_folder import labelled_runs

    runs, labels = zip(*labelled_runs(args.runs))
    out = compare_runs(list(runs), args.output, max_images=args.max_images, labels=list(labels))
    with open(out["markdown"], encoding="utf-8") as f:
        print(f.read())
    print(f"Wrote {out['markdown']}, {out['csv']} and {out['figure']}")
    return 0


def _colourise(args):
    from keras_colour.colourise import load_generator
    from keras_colour.video import colourise_media

    model = load_generator(args.model)
    written, skipped, videos = colourise_media(
        model, args.inputs, args.output, temporal=args.temporal, frames=args.frames, container=args.container,
        fps=args.fps, batch_size=args.batch_size, precision=args.precision, engine=args.engine,
        png_compression=args.png_compression,
        keyframe_interval=args.keyframe_interval,
    )  # fmt: skip
    for result in videos:
        cuts = f", scene cuts at frames {result.scene_cuts}" if result.scene_cuts else ""
        print(f"Colourised {result.frames} frames ({result.width}x{result.height}, {result.fps:g} fps) into "
              f"{result.output} in {result.seconds:.1f} s ({result.frames / result.seconds:.1f} frames/s); "
              f"temporal {'on' if result.temporal else 'off'}{cuts}; {result.precision}; {result.audio}")  # fmt: skip
    if written or skipped or not videos:
        print(f"Colourised {len(written)} image(s) into {args.output}; skipped {len(skipped)} unreadable file(s).")
    return 1 if skipped else 0


def _evaluate_video(args):
    from keras_colour.video.evaluate import evaluate_video

    report = evaluate_video(args.video, input_source=args.input, reference=args.reference, csv_path=args.csv)
    print(report.table())
    return 0


def _export(args):
    from keras_colour.colourise import load_generator
    from keras_colour.serving import export_generator

    path = args.run
    if os.path.isdir(path):
        path = os.path.join(path, "generator.keras")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{args.run!r} has no generator.keras: give a trained run folder or a .keras file")
    report = export_generator(
        load_generator(path), args.format, args.output, size=args.size, dynamic=args.dynamic, overwrite=args.overwrite
    )
    diffs = ", ".join(f"{size}: {diff:.1e}" for size, diff in report["max_abs_diff"].items())
    height, width = report["input_shape"][1:3]
    shape = "any size" if height is None else f"{height}x{width}"
    print(f"Exported {args.format} to {report['path']} (float32, L input of {shape}); "
          f"checked in its runtime, max |diff| from Keras {diffs} (tolerance {report['tolerance']:.0e})")  # fmt: skip
    return 0


def _demo(args):
    from keras_colour.config import config_from_dict
    from keras_colour.data import build_datasets

    config = config_from_dict({"data": {"kind": "demo", "image_size": args.image_size, "batch_size": args.batch_size}})
    data = build_datasets(config)
    print(data.summary())
    return 0


def _host_warning(host):
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"keras-colour: warning: serving on {host}: other machines on the network can reach this page",
              file=sys.stderr)  # fmt: skip


def _study_create(args):
    from keras_colour.run_folder import labelled_runs
    from keras_colour.study.create import create_study

    runs, labels = zip(*labelled_runs(args.runs))
    manifest = create_study(list(runs), args.images, args.output, seed=args.seed, labels=list(labels))
    print(f"Study in {args.output}: {manifest['scenes']} scenes x {len(manifest['models'])} versions "
          f"({', '.join(manifest['models'])}). Serve it with: keras-colour study serve {args.output}")  # fmt: skip
    return 0


def _study_serve(args):
    from keras_colour.colourise import load_generator
    from keras_colour.study.app import create_app, serve

    model = load_generator(args.model) if args.model else None
    app = create_app(args.study, model=model, max_upload_mb=args.max_upload_mb, precision=args.precision,
                     engine=args.engine)  # fmt: skip
    _host_warning(args.host)
    print(f"Study at http://{args.host}:{args.port}/ (Ctrl-C stops it; answers are in {args.study}/answers.sqlite)",
          flush=True)  # fmt: skip
    serve(app, args.host, args.port)
    return 0


def _study_results(args):
    from keras_colour.study.results import write_results

    out = write_results(args.study, args.output, exclude_flagged=args.exclude_flagged,
                        min_response_ms=args.min_response_ms)  # fmt: skip
    with open(out["markdown"], encoding="utf-8") as f:
        print(f.read())
    print(f"Wrote {out['markdown']}, {out['csv']} and {out['figure']}")
    return 0


def _serve(args):
    from keras_colour.colourise import load_generator
    from keras_colour.study.app import create_app, serve

    app = create_app(None, model=load_generator(args.model), max_upload_mb=args.max_upload_mb,
                     precision=args.precision, engine=args.engine)  # fmt: skip
    _host_warning(args.host)
    print(f"Colourise page at http://{args.host}:{args.port}/colourise (Ctrl-C stops it)", flush=True)
    serve(app, args.host, args.port)
    return 0


def describe(config):
    """One line of what a config resolves to: networks, update protocol, norms, data handling."""
    m, d, t = config.model, config.data, config.train
    return (
        f"{m.generator} / {m.discriminator}; protocol={t.protocol}; norm={m.norm}, spectral_norm={m.spectral_norm}, "
        f"instance_norm={m.instance_norm}, batch_norm={m.batch_norm}; data: {d.kind}, {d.image_size}px, "
        f"decoder={d.decoder}, resize={d.resize_method}"
        f"{' +antialias' if d.antialias and d.resize_method != 'nearest' else ''}, flip={d.flip}; "
        f"evaluation: colours={config.evaluation.colours}, "
        f"generator_training_mode={config.evaluation.generator_training_mode}; output_dir={config.output_dir}"
    )


def _feature_weights_problem(config):
    feature = config.loss.feature
    if feature is None or feature.weights in ("imagenet", "hed", "none", "random") or os.path.isfile(feature.weights):
        return None
    return f"`loss.feature.weights`: file not found: {feature.weights!r}"


def _check(args):
    from keras_colour.config import ConfigError, load_config

    failed = 0
    for path in args.configs:
        try:
            config = load_config(path, args.set)
            config.check_paths()
            problem = _feature_weights_problem(config)
            if problem:
                raise ConfigError(problem, source=path)
        except ConfigError as e:
            print(f"keras-colour: error: {e}", file=sys.stderr)
            failed += 1
            continue
        print(f"{path}: ok ({describe(config)})")
    if args.configs and failed < len(args.configs):
        from keras_colour import choices  # noqa: PLC0415 (after the configs' plugins registered their names)

        print("Accepted names (built in, and registered by the configs' plugins):")
        for key, names in (
            ("model.generator", choices.GENERATORS),
            ("model.discriminator", choices.DISCRIMINATORS),
            ("loss.colour", choices.COLOUR_LOSSES),
            ("loss.adversarial", choices.ADVERSARIAL_LOSSES),
            ("loss.feature.backbone", choices.BACKBONES),
            ("train.protocol", choices.PROTOCOLS),
        ):
            print(f"  {key}: {', '.join(names)}")  # fmt: skip
    if failed:
        print(f"{failed} of {len(args.configs)} config(s) have errors.", file=sys.stderr)
    return 1 if failed else 0


def _overrides(p):
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (repeat for several), e.g. --set train.epochs=3 --set data.image_size=64; "
        "the value is read as YAML; keys are listed in keras_colour/config/schema.py",
    )


def _server_options(p):
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--max-upload-mb", type=float, default=20, help="largest colourise upload in MB (default 20)")
    p.add_argument("--precision", choices=("float32", "bfloat16", "auto"), default="auto",
                   help="the colourise page's model precision, as for colourise (default auto)")  # fmt: skip
    _engine_option(p, "the colourise page's ")


ENGINE_HELP = (
    "runs the generator on: tensorflow, onnxruntime or litert (float32; checked to agree with TensorFlow to 1e-4), "
    "or auto (default): the fastest of those here, measured once per machine and model and remembered in the "
    "cache folder ($KERAS_COLOUR_CACHE/engines.sqlite)"
)


def _engine_option(p, whose=""):
    p.add_argument("--engine", choices=("auto", "tensorflow", "onnxruntime", "litert"), default="auto",
                   help=whose + ENGINE_HELP)  # fmt: skip


def build_parser():
    """The `keras-colour` argument parser: one sub-command per task, each with its options and help."""
    from keras_colour import __version__

    parser = argparse.ArgumentParser(
        prog="keras-colour", description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"keras-colour {__version__}")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    verbosity.add_argument("-v", "--verbose", action="store_true", help="also show TensorFlow's own start-up and logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train (and evaluate) one experiment from a YAML file")
    p.add_argument("config", help="experiment YAML, e.g. experiments/quickstart.yaml")
    _overrides(p)
    p.add_argument(
        "--stage",
        choices=("train", "evaluate", "all"),
        default="all",
        help="train only, evaluate an existing run only, or both (default)",
    )
    p.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="delete the run in output_dir first (only a run folder)")
    p.set_defaults(fn=_train, needs_tensorflow=True)

    p = sub.add_parser("evaluate", help="evaluate runs and write a comparison table and histogram figure")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR[=LABEL]",
                   help="run folders (each with config.yaml and generator.keras); LABEL names it in the table "
                        "(default: its name, or its folder's where names repeat)")  # fmt: skip
    p.add_argument("--output", required=True, help="folder for comparison.md, comparison.csv and histograms.png")
    p.add_argument("--max-images", type=int, default=None, help="evaluate at most this many test images per run")
    p.set_defaults(fn=_evaluate, needs_tensorflow=True)

    p = sub.add_parser("colourise", help="colourise photographs, folders, videos or frame folders with a generator")
    p.add_argument("--model", required=True, help="a generator.keras saved by a run")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (searched recursively)")
    p.add_argument("--output", required=True, help="folder for the PNGs and videos (inputs are never overwritten)")
    p.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default 8)")
    p.add_argument(
        "--png-compression",
        type=int,
        default=1,
        choices=range(10),
        metavar="0-9",
        help="zlib level of the PNGs (default 1: fast)",
    )
    p.add_argument("--precision", choices=("float32", "bfloat16", "auto"), default="auto",
                   help="compute precision of the generator (default auto: bfloat16 where the CPU has bfloat16 units "
                   "and it keeps ab within 1 Lab unit p99 of float32 on the first batch, else float32)")  # fmt: skip
    _engine_option(p)
    video = p.add_argument_group("video (files ending in .mp4 .avi .mov .mkv .m4v .webm; folders with --frames)")
    video.add_argument("--temporal", action=argparse.BooleanOptionalAction, default=True,
                       help="carry colours along the optical flow so they do not flicker (default on)")  # fmt: skip
    video.add_argument("--keyframe-interval", type=int, choices=(1, 2), default=2,
                       help="with --temporal, run the model on every frame (1) or every other frame (2, default: "
                       "about 1.4x faster; the frames between get the predictions on either side carried along the "
                       "optical flow, and a frame that starts a new shot is predicted on its own)")  # fmt: skip
    video.add_argument("--frames", action="store_true", help="treat folder inputs as numbered frames of one shot")
    video.add_argument("--fps", type=float, default=25.0, help="frame rate of a frame folder (default 25)")
    video.add_argument("--container", choices=("mkv", "mp4", "avi", "mov"), default=None,
                       help="output container (default: the input's; mkv and avi are lossless FFV1, mp4 and mov "
                       "H.264 with ffmpeg or MPEG-4 Part 2 without)")  # fmt: skip
    p.set_defaults(fn=_colourise, needs_tensorflow=True)

    p = sub.add_parser("evaluate-video", help="flicker (warping error) of a colourised video and PSNR per frame")
    p.add_argument("video", help="the colourised video file or frame folder")
    p.add_argument("--input", default=None, help="the grayscale source (motion is measured on it when given)")
    p.add_argument("--reference", default=None, help="a colour original of the same frames, for PSNR per frame")
    p.add_argument("--csv", default=None, help="also write the per-frame table to this CSV file")
    p.set_defaults(fn=_evaluate_video, needs_tensorflow=True)

    p = sub.add_parser("export", help="export a run's generator (keras, savedmodel, onnx, litert), checked on load")
    p.add_argument("run", metavar="RUN_DIR", help="a run folder (its generator.keras) or a .keras generator file")
    p.add_argument("--format", required=True, choices=("keras", "savedmodel", "onnx", "litert"))
    p.add_argument("--output", required=True, help="file to write (a folder for savedmodel)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="fixed input size (default: training's)")
    size.add_argument("--dynamic", action="store_true", help="any input size (multiples of 2**downsamplings)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(fn=_export, needs_tensorflow=True)

    p = sub.add_parser("demo", help="build the built-in demo dataset (skimage photographs) and summarise its pipeline")
    p.add_argument("--image-size", type=int, default=64, help="crop size in pixels (default 64)")
    p.add_argument("--batch-size", type=int, default=8, help="batch size (default 8)")
    p.set_defaults(fn=_demo, needs_tensorflow=True)

    p = sub.add_parser("study", help="the naturalness study of the thesis (Table 4): create, serve, results")
    study = p.add_subparsers(dest="study_command", required=True, metavar="STUDY_COMMAND")
    q = study.add_parser("create", help="pick test images and each run's colourisation into a study folder")
    q.add_argument("runs", nargs="+", metavar="RUN_DIR[=LABEL]",
                   help="run folders (the first one's test set is used); LABEL names the model in the study "
                        "(default: its name, or its folder's where names repeat)")  # fmt: skip
    q.add_argument("--images", type=int, default=20, help="scenes to show (default 20)")
    q.add_argument("--output", required=True, help="the new study folder")
    q.add_argument("--seed", type=int, default=42, help="seed of the image choice and participants' orders")
    q.set_defaults(fn=_study_create, needs_tensorflow=True)
    q = study.add_parser("serve", help="serve the study (answers go to STUDY_DIR/answers.sqlite)")
    q.add_argument("study", metavar="STUDY_DIR")
    _server_options(q)
    q.add_argument("--model", default=None, help="also serve the colourise page with this generator.keras")
    q.set_defaults(fn=_study_serve, needs_tensorflow=True)
    q = study.add_parser("results", help="naturalness per model with 95%% Wilson intervals, beside Table 4")
    q.add_argument("study", metavar="STUDY_DIR")
    q.add_argument(
        "--output", default=None, help="folder for results.md, results.csv, naturalness.png (default: the study)"
    )
    q.add_argument("--exclude-flagged", action="store_true", help="drop participants flagged as too fast or constant")
    q.add_argument("--min-response-ms", type=int, default=800, help="flag a median response faster than this (800)")
    q.set_defaults(fn=_study_results, needs_tensorflow=False)

    p = sub.add_parser("serve", help="serve a colourise page for a generator.keras")
    p.add_argument("--model", required=True, help="a generator.keras saved by a run")
    _server_options(p)
    p.set_defaults(fn=_serve, needs_tensorflow=True)

    p = sub.add_parser("check", help="validate config files (all of them) and print what each resolves to")
    p.add_argument("configs", nargs="+", metavar="CONFIG", help="experiment YAML files")
    _overrides(p)
    p.set_defaults(fn=_check, needs_tensorflow=False)
    return parser


def main(argv=None):
    """Runs the command line; returns the exit code (0 ok, 1 some inputs failed, 2 a user error, 130 Ctrl-C)."""
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    from keras_colour.errors import UserError

    try:
        if args.command == "train":
            _prepare_determinism(args)
        if args.verbose:
            loud_tensorflow_import()
        elif args.needs_tensorflow:
            _import_tensorflow_quietly()
        return args.fn(args)
    except (UserError, FileNotFoundError) as e:
        print(f"keras-colour: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("keras-colour: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
