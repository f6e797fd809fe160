"""The `edgeth` command. This module only wires commands; work lives in the library.

Subcommands are imported lazily (only the one being run), so `edgeth --help` stays fast.
Every EdgethError becomes `error: <what> — <what to do>` with its exit code (2 for bad
input); EDGETH_DEBUG=1 shows the traceback instead.
"""
from __future__ import annotations

import importlib
import os
import sys

import click

# name -> (module under edgeth.cli, attribute, one-line purpose shown by `edgeth --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "data": ("data", "cli", "Generate the synthetic corpus or inspect a folder of clips."),
    "train": ("train", "cli", "Train a model family from scratch on a clip folder."),
    "generate": ("generate", "cli", "Portrait + speech -> talking-head mp4 with the PyTorch reference."),
    "export": ("export", "cli", "Export a checkpoint into a verified bundle for one or more targets."),
    "verify": ("verify", "cli", "Check a bundle (or outputs dumped on a device) against its golden vectors."),
    "run": ("run", "cli", "Run a bundle's whole pipeline on a chosen backend and write an mp4."),
    "lint": ("lint", "cli", "Check a bundle's artifacts against a target's rules (TensorRT parser, QDQ, profiles)."),
    "inspect": ("inspect", "cli", "Print a bundle's manifest in readable form."),
    "targets": ("targets", "cli", "List export targets and runtimes, and why one is unavailable."),
    "models": ("models", "cli", "List registered model families and their presets."),
    "debug": ("debug", "cli", "First-divergence report: per-layer error of an exported program."),
    "build": ("build", "cli", "The main job: data -> train -> quantize -> export -> verify -> bench -> report."),
    "bench": ("bench", "cli", "Latency, FPS, memory and size per backend, as ratios to PyTorch eager."),
    "report": ("report", "cli", "Write a self-contained HTML parity report for a bundle."),
    "codec": ("codec", "cli", "VQTalker motion tokens: encode a clip into a token file, decode one on a portrait."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return [n for n, (mod, _, _) in COMMANDS.items() if _exists(mod)]

    def get_command(self, ctx, name):
        if name not in COMMANDS or not _exists(COMMANDS[name][0]):
            return None
        mod, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(f"edgeth.cli.{mod}"), attr)

    def format_commands(self, ctx, formatter):
        rows = [(n, COMMANDS[n][2]) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _exists(mod: str) -> bool:
    return importlib.util.find_spec(f"edgeth.cli.{mod}") is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgeth")
def cli():
    """edgeth: train, quantize, export and verify talking-head models for phones and Jetsons.

    \b
    Examples:
      edgeth data synth data/ --clips 16 --seconds 4
      edgeth train ifmdm --data data/ --preset tiny --out runs/tiny
      edgeth export --ckpt runs/tiny --target executorch,onnx --out bundle/
      edgeth verify bundle/ --backend executorch

    Set EDGETH_DEBUG=1 to see tracebacks.
    """


def _quiet_third_party() -> None:
    import logging
    import warnings

    for name in ("torchao", "coremltools", "nncf", "torch._export", "executorch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")


def main(argv: list[str] | None = None) -> None:
    from edgeth.errors import EdgethError

    debug = os.environ.get("EDGETH_DEBUG", "") not in ("", "0")
    _quiet_third_party()
    try:
        cli.main(args=argv, prog_name="edgeth", standalone_mode=False)
    except EdgethError as e:
        if debug:
            raise
        click.echo(f"error: {e.message()}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as e:  # bare `edgeth`: the help text
        e.show()
        sys.exit(e.exit_code)
    except click.ClickException as e:  # bad option or value: one line, like every other error
        ctx = getattr(e, "ctx", None)
        cmd = ctx.command_path if ctx is not None else "edgeth"
        click.echo(f"error: {e.format_message()} — see `{cmd} --help`", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # an unexpected failure: still one line unless debugging
        if debug:
            raise
        click.echo(f"error: internal error: {type(e).__name__}: {e} — rerun with EDGETH_DEBUG=1 and report it", err=True)
        sys.exit(3)


if __name__ == "__main__":
    main()
