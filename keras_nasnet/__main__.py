"""``python -m keras_nasnet``: the package's commands, each its own module, listed here so a user
who types the package's name learns where they are."""

import sys

COMMANDS = {
    "search": "architecture search on CIFAR-10 (PPO, evolution, random), its stages and `report`",
    "train": "train a CIFAR network (any genotype) and `evaluate` one",
    "weights": "the weight registry: `list`, `fetch`, `verify`, `convert`",
    "export": "export a model to LiteRT, ONNX or SavedModel (optionally int8)",
}


def main(argv=None) -> int:
    """Prints the commands (``python -m keras_nasnet.<command> --help`` for each); exit code 0 for
    ``--help``, else 2 (no command is run from here)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    lines = ["usage: python -m keras_nasnet.<command> ...  (each command has --help)", "", "commands:"]
    lines += [f"  {name:<8} {what}" for name, what in COMMANDS.items()]
    if argv and argv[0] in COMMANDS:
        lines += ["", f"run it as: python -m keras_nasnet.{argv[0]} {' '.join(argv[1:])}".rstrip()]
    helped = argv[:1] in (["-h"], ["--help"])
    print("\n".join(lines), file=sys.stdout if helped else sys.stderr)
    return 0 if helped else 2


if __name__ == "__main__":
    sys.exit(main())
