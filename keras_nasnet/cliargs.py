"""Argument types for the command lines: numbers checked where they are parsed, so a bad value
gets argparse's usage message naming the flag instead of a hang or a traceback later."""

from __future__ import annotations

import argparse
import math


def _number(kind, minimum, inclusive: bool, what: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if value < minimum or (not inclusive and value == minimum):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what  # argparse names the type in some messages
    parse.__doc__ = (f"An argparse ``type``: ``text`` as {what}, else ``argparse.ArgumentTypeError`` "
                     "(argparse then prints the flag and the value).")
    return parse


#: An integer >= 1.
positive_int = _number(int, 1, True, "an integer of at least 1")
#: An integer >= 0.
nonnegative_int = _number(int, 0, True, "an integer of at least 0")
#: A finite float > 0.
positive_float = _number(float, 0.0, False, "a number above 0")
#: A finite float >= 0.
nonnegative_float = _number(float, 0.0, True, "a number of at least 0")


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors stay readable: the generated usage of a parser with
    many flags (the search's runs to about 60 lines) is replaced by a pointer to ``--help``, so the
    one line that says what was wrong is not buried under it. Exit code 2, as argparse's."""

    def __init__(self, *args, **kwargs):
        # Prefixes of flags (`--child-ep` for `--child-epochs`) would slip past the checks that
        # refuse flags a command would ignore, which compare full names; argparse's own message
        # for an unknown flag names the flags that exist.
        kwargs.setdefault("allow_abbrev", False)
        if kwargs.get("description"):  # module docstrings are reST: ``x`` reads as `x` in --help
            kwargs["description"] = kwargs["description"].replace("``", "`")
        super().__init__(*args, **kwargs)

    def error(self, message):
        # Decided by the flags, not the formatted usage, whose line count depends on the terminal's
        # width; a usage the parser was given (short by design) is kept.
        if self.usage is None and len(self._actions) > 8:
            usage = f"usage: {self.prog} [flags]  (`{self.prog} --help` lists them)\n"
        else:
            usage = self.format_usage()
        self.exit(2, f"{usage}{self.prog}: error: {message}\n")
