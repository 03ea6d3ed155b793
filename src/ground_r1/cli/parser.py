"""The command-line parser of the training CLIs: TRL's `TrlParser` (dataclass fields as flags, `--config YAML`)
made strict and readable (issue 17).

- No prefix matching: `--learning_rat 1e-5` is an error naming `--learning_rate`, never taken for it
  (`allow_abbrev=False`; argparse's default would silently accept any unambiguous prefix).
- Unknown flags and unknown YAML keys are usage errors that name the file or the flag and the closest valid name.
- `--help` shows a one-paragraph description, `--config`, then the method's own options, then the usual training
  options; `--help_all` lists every one of TRL's and transformers' options after them.

Usage errors exit 2 (argparse's code for a wrong command line).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
from pathlib import Path
from typing import Iterable, Sequence

from trl import TrlParser


@dataclasses.dataclass(frozen=True)
class HelpSection:
    title: str
    dests: tuple[str, ...]


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option once, in its underscore spelling (the hyphen spelling is accepted too), with a short metavar."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings:
            return super()._format_action_invocation(action)
        name = action.option_strings[0]
        if isinstance(action, argparse._HelpAction):
            return ", ".join(action.option_strings)
        if action.nargs == 0:
            return name
        kind = getattr(action.type, "__name__", "") if action.type is not None else ""
        metavar = action.metavar or {"int": "INT", "float": "FLOAT", "string_to_bool": "[BOOL]"}.get(kind, "VALUE")
        return f"{name} {metavar}" + (" ..." if action.nargs == "+" else "")


class _HelpAllAction(argparse.Action):
    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.print_help_all()
        parser.exit()


def _config_path(args: Sequence[str]) -> str | None:
    for i, arg in enumerate(args):
        if arg == "--config":
            return args[i + 1] if i + 1 < len(args) else None
    return None


class StrictTrlParser(TrlParser):
    """TrlParser with the rules of the module doc. ``sections`` orders ``--help``: each section lists its flags
    (argparse dests) in the given order; everything else is left to ``--help_all``."""

    def __init__(
        self,
        dataclass_types,
        *,
        description: str = "",
        sections: Iterable[HelpSection] = (),
        config_help: str = "YAML preset; every key is a flag below, and flags given on the command line override it",
        prog: str | None = None,
    ):
        super().__init__(
            dataclass_types,
            allow_abbrev=False,
            description=description,
            prog=prog,
            usage=f"{prog or '%(prog)s'} [--config YAML] [--option VALUE ...]",
            formatter_class=_Formatter,
        )
        self.sections = list(sections)
        self.config_help = config_help
        self.add_argument(
            "--help_all", action=_HelpAllAction, help="list every option, TRL's and transformers' included, and exit"
        )

    # ------------------------------------------------------------------------------------------------- help
    def _config_action(self) -> argparse.Action:
        return argparse.Action(option_strings=["--config"], dest="config", metavar="YAML", help=self.config_help)

    def _actions_by_dest(self) -> dict[str, list[argparse.Action]]:
        by_dest: dict[str, list[argparse.Action]] = {}
        for action in self._actions:
            by_dest.setdefault(action.dest, []).append(action)
        return by_dest

    def _format(self, full: bool) -> str:
        formatter = self._get_formatter()
        formatter.add_usage(self.usage, [], [])
        formatter.add_text(self.description)
        by_dest = self._actions_by_dest()
        shown: set[str] = {"help", "help_all", argparse.SUPPRESS}
        formatter.start_section("start here")
        formatter.add_arguments(
            [
                self._config_action(),
                *by_dest.get("help", []),
                *[a for a in self._actions if isinstance(a, _HelpAllAction)],
            ]
        )
        formatter.end_section()
        for section in self.sections:
            actions = [a for dest in section.dests for a in by_dest.get(dest, []) if dest not in shown]
            shown.update(section.dests)
            if actions:
                formatter.start_section(section.title)
                formatter.add_arguments(actions)
                formatter.end_section()
        rest = [a for a in self._actions if a.dest not in shown]
        if full:
            formatter.start_section("every other option (TRL's config, transformers' TrainingArguments)")
            formatter.add_arguments(rest)
            formatter.end_section()
        else:
            formatter.add_text(
                f"{len({a.dest for a in rest})} more options of TRL's config and transformers' "
                "TrainingArguments are accepted on the command line and in the YAML: --help_all lists "
                "them."
            )
        return formatter.format_help()

    def format_help(self) -> str:
        return self._format(full=False)

    def print_help_all(self, file=None) -> None:
        self._print_message(self._format(full=True), file or sys.stdout)

    # --------------------------------------------------------------------------------------------- parsing
    def _suggest(self, name: str) -> str:
        """ " (did you mean --learning_rate?)" for a flag, " (did you mean learning_rate?)" for a YAML key."""
        options = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
        flag = name.startswith("--")
        close = difflib.get_close_matches(name if flag else f"--{name}", options, n=1, cutoff=0.6)
        if not close:
            return ""
        return f" (did you mean {close[0] if flag else close[0][2:]}?)"

    def parse_args_and_config(
        self, args=None, return_remaining_strings=False, fail_with_unknown_args=True, separate_remaining_strings=False
    ):
        """TrlParser's parse, after two checks it makes too late or not at all: every flag and every YAML key must
        be an option (exactly: no prefixes); checked before any dataclass is built, whose own checks would
        otherwise report something else first."""
        args = list(sys.argv[1:] if args is None else args)
        config = _config_path(args)
        if "--config" in args and config is None:
            self.error("--config needs a YAML file")
        if config is not None and not Path(config).is_file():
            self.error(f"--config {config}: no such file")
        options = {o for action in self._actions for o in action.option_strings} | {"--config"}
        if not return_remaining_strings:
            flags = [a for a in args if a.startswith("--") and a.split("=", 1)[0] not in options]
            if flags:
                hints = "; ".join(f"{f}{self._suggest(f.split('=', 1)[0])}" for f in flags)
                self.error(
                    f"unrecognized argument(s): {hints} (an option's name must be given whole; "
                    "--help lists the options)"
                )
        if config is not None and fail_with_unknown_args:
            dests = {a.dest for a in self._actions}
            unknown = [k for k in _yaml_keys(config) if k not in dests and k != "env"]
            if unknown:
                hints = "; ".join(f"{k}{self._suggest(k)}" for k in unknown)
                self.error(
                    f"{config}: unknown key(s): {hints}. Every key must be an option of "
                    f"`python -m {self.prog_module} --help_all`"
                )
        return super().parse_args_and_config(
            args, return_remaining_strings, fail_with_unknown_args, separate_remaining_strings
        )

    @property
    def prog_module(self) -> str:
        return self.prog.replace("python -m ", "") if self.prog else "ground_r1.cli.train_grpo"


def _yaml_keys(path: str | None) -> list[str]:
    import yaml

    if path is None:
        return []
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return list(raw) if isinstance(raw, dict) else []


def own_fields(cls, base) -> tuple[str, ...]:
    """The dataclass fields ``cls`` adds to ``base`` (e.g. GroundR1Config's over GRPOConfig's), in order."""
    inherited = {f.name for f in dataclasses.fields(base)}
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in inherited)


def field_names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))
