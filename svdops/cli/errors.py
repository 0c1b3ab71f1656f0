"""The one place where expected failures become a message and an exit code."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click

from svdops.errors import SvdopsError
from svdops.text import printable

P = ParamSpec("P")
R = TypeVar("R")

EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in svdops, not in the user's input


def report_error(err: SvdopsError) -> None:
    # the message quotes paths, host names and host output: written out, never sent to the terminal raw
    click.secho(f"error: {printable(str(err))}", fg="red", err=True)
    if err.hint:
        click.echo(f"hint: {printable(err.hint)}", err=True)


def handles_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Map SvdopsError to its exit code and a two-line message; Ctrl-C to 130; bugs to 70."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except SvdopsError as err:
            report_error(err)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except BrokenPipeError:
            # `svdops facts --json | head` closes the pipe early: not an error worth a traceback
            sys.stderr.close()
            sys.exit(0)
        except Exception as exc:  # a bug: say so briefly, keep the traceback for --debug
            if os.environ.get("SVDOPS_DEBUG"):
                traceback.print_exc()
            click.secho(f"internal error: {type(exc).__name__}: {printable(str(exc))}", fg="red", err=True)
            click.echo("this is a bug in svdops; rerun with SVDOPS_DEBUG=1 for the traceback and report it", err=True)
            sys.exit(EXIT_INTERNAL)

    return wrapper
