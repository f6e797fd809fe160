"""Pipeline options on the command line: `--opt NAME=VALUE` (repeatable), read generically from
the family's PipelineSpec (OptionSpec), and `--help` that lists every family's options."""
from __future__ import annotations

from typing import Any

import click

from edgeth.errors import InputError


def opt_option(f):
    return click.option("--opt", "opts", multiple=True, metavar="NAME=VALUE",
                        help="A pipeline option of the model family (repeatable); see the list below.")(f)


def video_quality_option(f):
    """--video-quality NAME: the mp4 encoder setting, a name in edgeth.data.video.QUALITIES."""
    return click.option("--video-quality", default="standard", show_default=True, metavar="NAME",
                        help="mp4 encoder: standard (H.264 High 4:2:0 CRF 10, small frames upscaled; plays "
                             "everywhere), lossless (bit-exact RGB H.264 for QA; many players refuse it), "
                             "compact (CRF 17 at native size: small faces lose detail).")(f)


def parse_opts(pairs: tuple[str, ...] | list[str], **aliases: Any) -> dict[str, Any]:
    """{name: text} from NAME=VALUE pairs, plus legacy flag values (None = not given)."""
    out: dict[str, Any] = {k: v for k, v in aliases.items() if v is not None}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--opt {pair!r} is not NAME=VALUE", "e.g. --opt steps=20")
        out[name.strip()] = value
    return out


def describe_family_options() -> list[tuple[str, list[str]]]:
    """[(family, [one line per option])] for every registered family."""
    from edgeth.models import get_model, model_names

    rows = []
    for name in model_names():
        fam = get_model(name)
        opts = fam.options() if callable(getattr(fam, "options", None)) else ()
        rows.append((name, [o.describe() for o in opts]))
    return rows


def format_summary(result: Any, spec: Any) -> str:
    """`name=value` of every declared option the driver reported back in its extras."""
    vals = []
    for o in getattr(spec, "options", ()):
        v = result.extras.get(o.name)
        if isinstance(v, float):
            vals.append(f"{o.name}={v:.3g}")
        elif v is not None and not hasattr(v, "shape"):
            vals.append(f"{o.name}={v}")
    return f" [{', '.join(vals)}]" if vals else ""


class FamilyOptionsCommand(click.Command):
    """A command whose --help ends with each registered family's pipeline options (computed
    only when help is shown, so loading the command stays light)."""

    def format_epilog(self, ctx, formatter):
        super().format_epilog(ctx, formatter)
        try:
            rows = describe_family_options()
        except Exception as e:  # a broken family must not break --help
            rows = [("(families failed to load)", [str(e)])]
        with formatter.section("Pipeline options (--opt NAME=VALUE), per model family"):
            for fam, lines in rows:
                formatter.write_text(f"{fam}:")
                with formatter.indentation():
                    for line in lines or ["(none)"]:
                        formatter.write_text(line)
